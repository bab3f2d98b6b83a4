/**
 * Sets every quantized layer of an AMCT config JSON (createQuantConfig's output) to `bits` for
 * data and weights: the PTQ baseline a retrain example compares with quantizes what the retrain
 * config quantizes. A .cfg's common_config would do the same through createQuantConfig; editing
 * the JSON keeps each example's one call to createQuantConfig as AMCT's sample writes it.
 */
import * as fs from 'fs';

export function setQuantBits(configFile: string, bits: number): void {
  const json = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<
    string,
    Record<string, Record<string, unknown>>
  >;
  for (const layer of Object.values(json)) {
    if (typeof layer !== 'object' || !layer.activation_quant_params) continue;
    layer.activation_quant_params.num_bits = bits;
    if (layer.weight_quant_params) layer.weight_quant_params.num_bits = bits;
  }
  fs.writeFileSync(configFile, JSON.stringify(json, null, 4));
}
