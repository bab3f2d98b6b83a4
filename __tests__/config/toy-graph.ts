/** The toy graph the config tests quantize: every quantizable kind plus a skipped one. */
import { Graph, Tensor, attr, type Value } from '../../src/ir';

/** x → conv1 → relu1 → conv2 (dilated) → pool1 (AveragePool) → flat → fc1 (Gemm) → mm1 (MatMul). */
export function makeGraph(): Graph {
  const g = new Graph('toy');
  const x = g.addInput('x', { dtype: 'float32', shape: [1, 3, 8, 8] });
  const w = (name: string, dims: number[]): Value => g.addInitializer(name, Tensor.float32(dims));
  const out = (name: string): Value => g.newValue(name);
  const c1 = out('c1');
  g.addNode({
    name: 'conv1',
    opType: 'Conv',
    inputs: [x, w('W1', [4, 3, 3, 3]), w('B1', [4])],
    outputs: [c1],
  });
  const r1 = out('r1');
  g.addNode({ name: 'relu1', opType: 'Relu', inputs: [c1], outputs: [r1] });
  const c2 = out('c2');
  g.addNode({
    name: 'conv2',
    opType: 'Conv',
    inputs: [r1, w('W2', [4, 4, 3, 3])],
    outputs: [c2],
    attrs: { dilations: attr.ints([2, 2]) },
  });
  const p1 = out('p1');
  g.addNode({
    name: 'pool1',
    opType: 'AveragePool',
    inputs: [c2],
    outputs: [p1],
    attrs: { kernel_shape: attr.ints([2, 2]) },
  });
  const f1 = out('f1');
  g.addNode({ name: 'flat', opType: 'Flatten', inputs: [p1], outputs: [f1] });
  const y = out('y');
  g.addNode({
    name: 'fc1',
    opType: 'Gemm',
    inputs: [f1, w('W3', [5, 16]), w('B3', [5])],
    outputs: [y],
    attrs: { transB: attr.int(1) },
  });
  const z = out('z');
  g.addNode({ name: 'mm1', opType: 'MatMul', inputs: [y, w('W4', [5, 2])], outputs: [z] });
  g.outputs.push(z);
  return g;
}
