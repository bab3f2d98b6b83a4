import { attr, type Value } from '../../../ir';
import type { LayerContext, Shape } from '../context';
import { bool, has, num, spatialRepeated } from './common';

export interface ConvGeometry {
  numOutput: number;
  group: number;
  kernel: number[];
  stride: number[];
  pad: number[];
  dilation: number[];
  biasTerm: boolean;
  channels: number;
}

/** BaseConvolutionLayer's parameter reading, shared by Convolution and Deconvolution. */
export function convGeometry(ctx: LayerContext): ConvGeometry {
  const p = ctx.param<Record<string, unknown>>('convolutionParam');
  const shape = ctx.shape(0);
  const axis = ctx.axis(num(p, 'axis', 1), shape.length);
  if (axis !== 1)
    throw ctx.unsupported(`has convolution axis ${axis} (only channel axis 1 is supported)`);
  const nSpatial = shape.length - 2;
  if (nSpatial < 1)
    throw ctx.formatError(`needs a bottom with spatial axes, got [${shape.join(', ')}]`);
  let kernelSize: number[];
  if (has(p, 'kernelH') || has(p, 'kernelW')) {
    if (nSpatial !== 2)
      throw ctx.formatError(`kernel_h / kernel_w need 2 spatial axes, the bottom has ${nSpatial}`);
    if (!has(p, 'kernelH') || !has(p, 'kernelW'))
      throw ctx.formatError('sets only one of kernel_h and kernel_w');
    kernelSize = [num(p, 'kernelH', 0), num(p, 'kernelW', 0)];
  } else {
    kernelSize = spatialRepeated(ctx, p, 'kernelSize', nSpatial, null, false);
  }
  const channels = shape[1];
  if (channels === null || channels === undefined)
    throw ctx.formatError('needs a known channel count');
  const numOutput = num(p, 'numOutput', 0);
  if (numOutput <= 0) throw ctx.formatError('sets no num_output');
  const group = num(p, 'group', 1);
  if (channels % group !== 0 || numOutput % group !== 0) {
    throw ctx.formatError(
      `group ${group} does not divide the ${channels} input / ${numOutput} output channels`,
    );
  }
  return {
    numOutput,
    group,
    kernel: kernelSize,
    stride: spatialRepeated(ctx, p, 'stride', nSpatial, 1),
    pad: spatialRepeated(ctx, p, 'pad', nSpatial, 0),
    dilation: spatialRepeated(ctx, p, 'dilation', nSpatial, 1, false),
    biasTerm: bool(p, 'biasTerm', true),
    channels,
  };
}

export function convAttrs(g: ConvGeometry): Record<string, ReturnType<typeof attr.int>> {
  return {
    group: attr.int(g.group),
    kernel_shape: attr.ints(g.kernel),
    strides: attr.ints(g.stride),
    pads: attr.ints([...g.pad, ...g.pad]),
    dilations: attr.ints(g.dilation),
  };
}

/** Convolution -> Conv. Blobs: weight [Cout, Cin/group, k...], bias [Cout]. */
export function lowerConvolution(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const g = convGeometry(ctx);
  const shape = ctx.shape(0);
  const specs = [{ role: 'weight', dims: [g.numOutput, g.channels / g.group, ...g.kernel] }];
  if (g.biasTerm) specs.push({ role: 'bias', dims: [g.numOutput] });
  const w = ctx.weights(specs);
  const out: Shape = [shape[0]!, g.numOutput];
  for (let i = 0; i < g.kernel.length; i++) {
    const d = shape[i + 2]!;
    const ext = g.dilation[i]! * (g.kernel[i]! - 1) + 1;
    out.push(d === null ? null : Math.floor((d + 2 * g.pad[i]! - ext) / g.stride[i]!) + 1);
  }
  if (out.some((d) => d !== null && d <= 0)) {
    throw ctx.formatError(
      `gives an empty output [${out.join(', ')}] for bottom [${shape.join(', ')}]`,
    );
  }
  return [ctx.op('Conv', [ctx.bottom(0), ...w], ctx.top(0, out), convAttrs(g))];
}

/** Deconvolution -> ConvTranspose. Blobs: weight [Cin, Cout/group, k...], bias [Cout]. */
export function lowerDeconvolution(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const g = convGeometry(ctx);
  const shape = ctx.shape(0);
  const specs = [{ role: 'weight', dims: [g.channels, g.numOutput / g.group, ...g.kernel] }];
  if (g.biasTerm) specs.push({ role: 'bias', dims: [g.numOutput] });
  const w = ctx.weights(specs);
  const out: Shape = [shape[0]!, g.numOutput];
  for (let i = 0; i < g.kernel.length; i++) {
    const d = shape[i + 2]!;
    const ext = g.dilation[i]! * (g.kernel[i]! - 1) + 1;
    out.push(d === null ? null : g.stride[i]! * (d - 1) + ext - 2 * g.pad[i]!);
  }
  return [ctx.op('ConvTranspose', [ctx.bottom(0), ...w], ctx.top(0, out), convAttrs(g))];
}
