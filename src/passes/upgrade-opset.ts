/**
 * Raises an ONNX model's default-domain opset to 13, the first with per-axis QuantizeLinear /
 * DequantizeLinear (per-channel weights). Only operators whose signature changed between the
 * model's opset and 13 are rewritten; an operator this pass cannot convert is an error naming it.
 */
import { UnsupportedLayerError } from '../errors';
import { attr, Tensor, type Graph, type Node, type Value } from '../ir';
import type { Pass } from './pass';

export const TARGET_OPSET = 13;

export const upgradeOpsetPass: Pass<unknown> = {
  name: 'upgrade-opset',
  run(model) {
    const from = model.opset('') ?? TARGET_OPSET;
    if (from >= TARGET_OPSET) return { modified: false };
    for (const node of [...model.graph.nodes]) {
      if (node.domain !== '' && node.domain !== 'ai.onnx') continue;
      upgradeNode(model.graph, node, from);
    }
    model.setOpset('', TARGET_OPSET);
    if (model.opsetImports.some((o) => o.domain === 'ai.onnx')) {
      model.opsetImports = model.opsetImports.filter((o) => o.domain !== 'ai.onnx');
    }
    if (model.irVersion < 7) model.irVersion = 7;
    return { modified: true };
  },
};

function constInput(graph: Graph, node: Node, suffix: string, t: Tensor): Value {
  return graph.addInitializer(graph.uniqueName(`${node.name}.${suffix}`), t);
}

/** Moves an int-list attribute to an int64 input (Slice starts, Unsqueeze axes, ...). */
function attrToInput(graph: Graph, node: Node, name: string, index: number): void {
  const v = node.attrInts(name);
  node.attrs.delete(name);
  if (v === undefined) return;
  while (node.inputs.length < index) node.appendInput(null);
  node.replaceInput(index, constInput(graph, node, name, Tensor.int64([v.length], v)));
}

function upgradeNode(graph: Graph, node: Node, from: number): void {
  const fail = (why: string): never => {
    throw new UnsupportedLayerError(
      `cannot raise node '${node.name}' (${node.opType}) from opset ${from} to ${TARGET_OPSET}: ${why}`,
      { layer: node.name },
    );
  };
  switch (node.opType) {
    case 'Slice':
      if (from < 10) {
        const axes = node.attrInts('axes');
        attrToInput(graph, node, 'starts', 1);
        attrToInput(graph, node, 'ends', 2);
        if (axes) attrToInput(graph, node, 'axes', 3);
      }
      return;
    case 'Unsqueeze':
    case 'Squeeze':
    case 'ReduceSum':
      attrToInput(graph, node, 'axes', 1);
      return;
    case 'Split': {
      const split = node.attrInts('split');
      node.attrs.delete('split');
      if (split)
        node.replaceInput(1, constInput(graph, node, 'split', Tensor.int64([split.length], split)));
      return;
    }
    case 'Clip':
      if (from < 11) {
        const min = node.attrFloat('min', -3.4028234663852886e38);
        const max = node.attrFloat('max', 3.4028234663852886e38);
        node.attrs.delete('min');
        node.attrs.delete('max');
        node.replaceInput(1, constInput(graph, node, 'min', Tensor.float32([], [min])));
        node.replaceInput(2, constInput(graph, node, 'max', Tensor.float32([], [max])));
      }
      return;
    case 'Pad':
      if (from < 11) {
        const pads = node.attrInts('pads') ?? fail('no pads');
        const value = node.attrFloat('value', 0);
        node.attrs.delete('pads');
        node.attrs.delete('value');
        node.replaceInput(1, constInput(graph, node, 'pads', Tensor.int64([pads.length], pads)));
        node.replaceInput(2, constInput(graph, node, 'value', Tensor.float32([], [value])));
      }
      return;
    case 'Dropout':
      // inference: Dropout is the identity; the mask output, if wired, cannot be kept
      if (node.outputs.length > 1 && node.outputs[1]!.useCount > 0) fail('its mask output is used');
      node.opType = 'Identity';
      node.attrs.clear();
      node.truncateInputs(1);
      node.truncateOutputs(1);
      return;
    case 'BatchNormalization':
      node.attrs.delete('spatial');
      node.attrs.delete('consumed_inputs');
      node.attrs.delete('is_test');
      return;
    case 'Softmax':
    case 'LogSoftmax':
    case 'Hardmax':
      upgradeSoftmax(graph, node, fail);
      return;
    case 'Upsample': {
      const mode = node.attrString('mode', 'nearest');
      node.opType = 'Resize';
      node.attrs.clear();
      node.attrs.set('mode', attr.string(mode === 'bilinear' ? 'linear' : mode));
      const scales = node.input(1);
      if (!scales) fail('opset-7 Upsample scales attribute is not supported');
      node.replaceInput(1, null);
      node.replaceInput(2, scales);
      return;
    }
    case 'Add':
    case 'Mul':
    case 'Sub':
    case 'Div':
    case 'Gemm':
    case 'Sum':
    case 'Max':
    case 'Min':
      if (node.attrs.has('broadcast') && node.attrs.has('axis')) fail('legacy axis broadcast');
      node.attrs.delete('broadcast');
      node.attrs.delete('consumed_inputs');
      return;
    case 'TopK':
      if (from < 10) {
        const k = node.attrInt('k') ?? fail('no k');
        node.attrs.delete('k');
        node.replaceInput(1, constInput(graph, node, 'k', Tensor.int64([1], [k])));
      }
      return;
    default:
      node.attrs.delete('consumed_inputs');
  }
}

/**
 * Before opset 13 Softmax flattens the input to 2-D at `axis`; from 13 it works on one axis.
 * Same result when `axis` is the last dimension; otherwise rewrite as Flatten -> Softmax -> Reshape.
 */
function upgradeSoftmax(graph: Graph, node: Node, fail: (why: string) => never): void {
  const x = node.input(0)!;
  const rank = x.type?.shape?.length;
  const axis = node.attrInt('axis', 1);
  if (rank !== undefined && (axis === rank - 1 || axis === -1)) {
    node.attrs.set('axis', attr.int(-1));
    return;
  }
  if (rank === undefined && axis === -1) return;
  if (rank === undefined) fail('input rank unknown and axis is not the last one');
  const shape = graph.newValue(`${node.name}.shape`, { dtype: 'int64', shape: [rank!] });
  graph.addNode(
    {
      name: graph.uniqueName(`${node.name}.Shape`),
      opType: 'Shape',
      inputs: [x],
      outputs: [shape],
    },
    { before: node },
  );
  const flat = graph.newValue(`${node.name}.flat`, { dtype: 'float32' });
  graph.addNode(
    {
      name: graph.uniqueName(`${node.name}.Flatten`),
      opType: 'Flatten',
      inputs: [x],
      outputs: [flat],
      attrs: { axis: attr.int(axis) },
    },
    { before: node },
  );
  const out = node.output(0);
  const soft = graph.newValue(`${node.name}.2d`, { dtype: 'float32' });
  node.replaceInput(0, flat);
  node.replaceOutput(0, soft);
  node.attrs.set('axis', attr.int(1));
  graph.addNode(
    {
      name: graph.uniqueName(`${node.name}.Reshape`),
      opType: 'Reshape',
      inputs: [soft, shape],
      outputs: [out],
    },
    { after: node },
  );
}
