/**
 * Turns a float16 ONNX model (SqueezeNet_fp16) into float32: initializers, graph inputs and
 * outputs, value types and Cast targets. Calibration and the INT8 model both work from float32,
 * and ORT's x86 kernels for float16 are slow reference kernels anyway.
 */
import { Tensor, type Model, type Value } from '../ir';
import type { Pass } from './pass';

const FLOAT16 = 10;
const FLOAT = 1;

function upcastType(v: Value): boolean {
  if (v.type?.dtype !== 'float16') return false;
  v.type = { ...v.type, dtype: 'float32' };
  return true;
}

export const upcastFp16Pass: Pass<unknown> = {
  name: 'upcast-fp16',
  run(model: Model) {
    const g = model.graph;
    let modified = false;
    for (const v of g.initializers.values()) {
      if (v.constant?.dtype !== 'float16') continue;
      v.constant = new Tensor('float32', v.constant.dims, v.constant.toFloat32());
      upcastType(v);
      modified = true;
    }
    for (const v of [...g.inputs, ...g.outputs]) modified = upcastType(v) || modified;
    for (const n of g.nodes) {
      for (const o of n.outputs) modified = upcastType(o) || modified;
      if (n.opType === 'Cast' && n.attrInt('to', 0) === FLOAT16) {
        n.attrs.set('to', { kind: 'int', value: FLOAT });
        modified = true;
      }
    }
    return { modified };
  },
};

/** True when the model computes in float16 (a float16 input or float16 weights). */
export function isFp16Model(model: Model): boolean {
  const g = model.graph;
  return (
    g.inputs.some((v) => v.type?.dtype === 'float16') ||
    [...g.initializers.values()].some((v) => v.constant?.dtype === 'float16')
  );
}
