import type { Node } from './node';

/**
 * Where the output channels of a layer's weight are: Conv [Cout, Cin/g, ...] axis 0,
 * ConvTranspose [Cin, Cout/g, ...] axis 1, Gemm axis 0 with transB else 1, MatMul [K, N] axis 1.
 */
export function weightChannelAxis(node: Node): number {
  switch (node.opType) {
    case 'ConvTranspose':
      return 1;
    case 'Gemm':
      return node.attrInt('transB', 0) === 1 ? 0 : 1;
    case 'MatMul':
      return 1;
    default:
      return 0;
  }
}

/** Channel count along `axis` and the channel of flat element i (row-major). */
export function channelIndexer(
  dims: readonly number[],
  axis: number,
): { channels: number; channelOf: (i: number) => number } {
  const channels = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  return { channels, channelOf: (i) => Math.floor(i / inner) % channels };
}
