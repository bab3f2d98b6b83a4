/**
 * The deploy model (research §6.9): AscendQuant before each quantized layer, int8 weights and
 * int32 bias in the layer, AscendDequant after it with deq_scale packed into uint64 per channel.
 *   AscendQuant:   q = round(x * scale + offset), scale = 1 / scale_d, offset = offset_d
 *   AscendDequant: y = int32 * deq_scale, deq_scale = scale_d * scale_w
 * The packed deq_scale also carries the record's shift_bit (bits [39:32], 0 without one), so a
 * retrained model's searched shift N reaches the deploy model.
 */
import { attr, Tensor, type Graph, type Value } from '../ir';
import { packDeqScale } from '../quant';
import { deqScales, type LayerQuantPlan } from './layer-quant';

export const AMCT_DOMAIN = 'amct';

export function insertAscend(graph: Graph, plans: readonly LayerQuantPlan[]): void {
  const shared = new Map<string, Value>();
  for (const plan of plans) {
    const node = plan.node;
    const x = node.input(0)!;
    const key = `${x.name}|${plan.scaleD}|${plan.offsetD}`;
    let q = shared.get(key);
    if (!q) {
      q = graph.newValue(`${plan.layer}.quant.output0`, { dtype: 'int8', shape: x.type?.shape });
      graph.addNode(
        {
          name: graph.uniqueName(`${plan.layer}.quant`),
          opType: 'AscendQuant',
          domain: AMCT_DOMAIN,
          inputs: [x],
          outputs: [q],
          attrs: {
            scale: attr.float(Math.fround(1 / plan.scaleD)),
            offset: attr.float(plan.offsetD),
            scale_d: attr.float(plan.scaleD),
            sqrt_mode: attr.int(0),
            round_mode: attr.string('Round'),
            dst_type: attr.string('INT8'),
          },
        },
        x.producer ? { after: x.producer } : { before: node },
      );
      shared.set(key, q);
    }
    node.replaceInput(0, q);
    if (plan.weight) {
      const wv = node.input(1)!;
      node.replaceInput(
        1,
        graph.addInitializer(
          graph.uniqueName(`${wv.name}_int8`),
          new Tensor('int8', wv.constant!.dims, plan.weight.quantized),
        ),
      );
    }
    if (plan.bias) {
      const bv = node.input(2)!;
      node.replaceInput(
        2,
        graph.addInitializer(
          graph.uniqueName(`${bv.name}_int32`),
          new Tensor('int32', [plan.bias.length], plan.bias),
        ),
      );
    }
    const y = node.output(0);
    const y32 = graph.newValue(`${plan.layer}.dequant.input0`, {
      dtype: 'int32',
      shape: y.type?.shape,
    });
    node.replaceOutput(0, y32);
    const packed = packDeqScale(
      plan.scaleD,
      plan.weight?.scaleW ?? Float32Array.of(1),
      undefined,
      plan.weight?.shiftBit,
    );
    const deq = graph.addInitializer(
      graph.uniqueName(`${plan.layer}.dequant.param`),
      new Tensor('uint64', [packed.length], packed),
    );
    graph.addNode(
      {
        name: graph.uniqueName(`${plan.layer}.dequant`),
        opType: 'AscendDequant',
        domain: AMCT_DOMAIN,
        inputs: [y32, deq],
        outputs: [y],
        attrs: { sqrt_mode: attr.int(0), relu_flag: attr.int(0), dtype: attr.int(0) },
        meta: { deqScale: Array.from(deqScales(plan)) },
      },
      { after: node },
    );
  }
  graph.removeUnusedInitializers();
}
