/**
 * Runs a deploy model on ONNX Runtime by lowering the Ascend operators to float arithmetic on
 * integer values, so a deploy model can be checked against its fake-quant twin:
 *   AscendQuant   -> QuantizeLinear(x, scale_d, offset_d + 128) -> Cast(float) -> Sub(offset_d + 128)
 *                    i.e. q - offset_d as exact integers in float32 (the same rounding as the
 *                    fake-quant model's QuantizeLinear; the chip computes round(x * (1/scale_d)))
 *   layer         -> int8 weights / int32 bias become float32 constants of the same integers
 *   AscendDequant -> Mul by deq_scale (the float32 in bits [31:0] of each packed uint64)
 */
import { Tensor, type Node } from '../ir';
import { unpackDeqScale } from '../quant';
import type { LoweringContext } from '../runtime/lower';

export function lowerAscendQuant(node: Node, ctx: LoweringContext): void {
  const g = ctx.model.graph;
  const x = node.input(0)!;
  const out = node.output(0);
  const zpValue = node.attrFloat('offset', 0) + 128;
  const scaleD = node.attrFloat('scale_d') ?? 1 / node.attrFloat('scale', 1);
  const s = g.addInitializer(g.uniqueName(`${node.name}.scale_d`), Tensor.float32([], [scaleD]));
  const zp = g.addInitializer(
    g.uniqueName(`${node.name}.zp`),
    new Tensor('uint8', [], Uint8Array.of(zpValue)),
  );
  const zpf = g.addInitializer(g.uniqueName(`${node.name}.zpf`), Tensor.float32([], [zpValue]));
  const q = g.newValue(`${node.name}.q`);
  const qf = g.newValue(`${node.name}.qf`);
  const name = (s: string) => g.uniqueName(`${node.name}.${s}`);
  g.addNode(
    { name: name('QuantizeLinear'), opType: 'QuantizeLinear', inputs: [x, s, zp], outputs: [q] },
    { before: node },
  );
  g.addNode(
    {
      name: name('Cast'),
      opType: 'Cast',
      inputs: [q],
      outputs: [qf],
      attrs: { to: { kind: 'int', value: 1 } },
    },
    { before: node },
  );
  const centred = g.newValue(`${node.name}.centred`);
  g.addNode(
    { name: name('Sub'), opType: 'Sub', inputs: [qf, zpf], outputs: [centred] },
    { before: node },
  );
  for (const consumer of out.consumers()) floatConstants(consumer);
  g.replaceAllUses(out, centred);
  g.removeNode(node);
}

/** int8 / int32 constant inputs of a deploy layer as float32 constants of the same values. */
function floatConstants(node: Node): void {
  for (const v of node.inputs) {
    if (v?.constant && (v.constant.dtype === 'int8' || v.constant.dtype === 'int32')) {
      v.constant = new Tensor('float32', v.constant.dims, v.constant.toFloat32());
      v.type = { dtype: 'float32', shape: [...v.constant.dims] };
    }
  }
  for (const o of node.outputs) if (o.type?.dtype === 'int32') o.type = undefined;
}

export function lowerAscendDequant(node: Node, ctx: LoweringContext): void {
  const g = ctx.model.graph;
  const packed = node.constantInput(1)!.data as BigUint64Array;
  const { deqScale } = unpackDeqScale(packed);
  const producer = node.input(0)!.producer;
  const channelFirst =
    producer && ['Conv', 'ConvTranspose', 'AveragePool'].includes(producer.opType);
  // channel axis 1 of a [N, C, spatial...] output: as many trailing 1s as spatial axes (Conv3d: 3)
  const spatial =
    producer?.opType === 'AveragePool'
      ? producer.attrInts('kernel_shape', [1, 1]).length
      : (producer?.constantInput(1)?.dims.length ?? 4) - 2;
  const dims =
    deqScale.length === 1
      ? []
      : channelFirst
        ? [1, deqScale.length, ...new Array<number>(spatial).fill(1)]
        : [deqScale.length];
  const deq = g.addInitializer(
    g.uniqueName(`${node.name}.deq_scale`),
    Tensor.float32(dims, deqScale),
  );
  node.opType = 'Mul';
  node.domain = '';
  node.attrs.clear();
  node.replaceInput(1, deq);
  const out = node.output(0);
  if (out.type?.dtype !== 'float32') out.type = { dtype: 'float32' };
}
