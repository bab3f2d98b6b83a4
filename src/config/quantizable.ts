import { QUANTIZABLE_OPS, type Graph, type Node } from '../ir';

/** A layer AMCT can quantize, or one it cannot and why (for logs and `amct inspect`). */
export interface LayerInfo {
  /** AMCT's layer name: the Caffe layer name, or the ONNX node name. */
  name: string;
  /** The type users name in skip_layer_types / override_layer_types: Caffe type or ONNX op. */
  type: string;
  node: Node;
  quantizable: boolean;
  /** Why the layer stays float, when it does. */
  reason?: string;
  /** Weighted layers: AMCT's channel_wise default for this type. */
  channelWiseDefault: boolean;
  hasWeight: boolean;
}

interface CaffeMeta {
  layer?: string;
  type?: string;
}

export function layerName(node: Node): string {
  return (node.meta.caffe as CaffeMeta | undefined)?.layer ?? node.name;
}

export function layerType(node: Node): string {
  return (node.meta.caffe as CaffeMeta | undefined)?.type ?? node.opType;
}

/** Every node of a supported type, in graph order, with the verdict on whether it quantizes. */
export function listQuantLayers(graph: Graph): LayerInfo[] {
  const out: LayerInfo[] = [];
  for (const node of graph.nodes) {
    if (node.domain !== '') continue;
    const info = QUANTIZABLE_OPS[node.opType];
    if (!info && node.opType !== 'AveragePool') continue;
    const reason = info ? weightedReason(node, info.weightPort) : poolReason(node);
    out.push({
      name: layerName(node),
      type: layerType(node),
      node,
      quantizable: reason === undefined,
      ...(reason !== undefined ? { reason } : {}),
      channelWiseDefault: info?.channelWiseDefault ?? false,
      hasWeight: info !== undefined,
    });
  }
  return out;
}

function weightedReason(node: Node, weightPort: number): string | undefined {
  const w = node.input(weightPort);
  if (!w?.constant) return 'its weight is not a constant';
  if (w.useCount > 1) {
    const others = w
      .consumers()
      .filter((n) => n !== node)
      .map((n) => layerName(n));
    return `its weight '${w.name}' is shared with ${others.join(', ')}`;
  }
  const rank = w.constant.dims.length;
  switch (node.opType) {
    case 'Conv':
      if (rank === 4) return undefined;
      // Conv3d as AMCT takes it (research §9): dilation 1 on the depth axis.
      if (rank === 5) {
        return node.attrInts('dilations', [1, 1, 1])[0] === 1
          ? undefined
          : '3-D convolution needs dilation 1 on the depth axis';
      }
      return `only 2-D and 3-D convolution (4-D or 5-D filter) are supported, filter has rank ${rank}`;
    case 'ConvTranspose':
      if (rank !== 4) return `only 4-D filters are supported, filter has rank ${rank}`;
      if (node.attrInt('group', 1) !== 1) return 'grouped deconvolution is not supported';
      if (node.attrInts('dilations', [1, 1]).some((d) => d !== 1))
        return 'dilated deconvolution is not supported';
      return undefined;
    case 'Gemm':
      if (node.attrInt('transA', 0) !== 0) return 'Gemm with transA is not supported';
      if (node.attrFloat('alpha', 1) !== 1) return 'Gemm with alpha != 1 is not supported';
      return rank === 2 ? undefined : 'Gemm weight must be 2-D';
    case 'MatMul':
      return rank === 2 ? undefined : `MatMul weight must be a 2-D constant, has rank ${rank}`;
    default:
      return undefined;
  }
}

function poolReason(node: Node): string | undefined {
  const kernel = node.attrInts('kernel_shape', []);
  if (kernel.length !== 2) return 'only 2-D average pooling is supported';
  return undefined;
}
