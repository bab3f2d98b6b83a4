/**
 * The graph side of tensor decomposition: which Conv nodes can be decomposed (ConvSite), the
 * children that replace one (geometry per child, Caffe layer parameters), and the rewiring.
 * The last child produces the original output value, so consumers, graph outputs and Caffe blob
 * names stay as they were; only the last child carries the bias. Models read from Caffe get each
 * child as a real Caffe Convolution layer (meta.caffe / meta.caffeLayer with kernel_h/kernel_w,
 * stride_h/stride_w, pad_h/pad_w), which saveCaffeModel writes with its own blobs.
 */
import { UnsupportedLayerError } from '../errors';
import {
  attr,
  floatToHalf,
  Node,
  Tensor,
  Value,
  type Attr,
  type Dim,
  type Graph,
  type Model,
} from '../ir';
import type { ConvFactor, ConvInfo, Dims4 } from '../decomposition/decompose-conv';
import { logger } from '../log/logger';

/** AMCT's ori_layer_info: the facts decompose_network checks a layer against. */
export interface OriLayerInfo {
  name: string;
  in_channels: number;
  out_channels: number;
  kernel_size: number[];
  stride: number[];
  dilation: number[];
  groups: number;
}

export interface ConvSite {
  node: Node;
  layer: string;
  dims: Dims4;
  info: ConvInfo;
  weight: Value;
  pads: [number, number, number, number];
  autoPad: string | undefined;
}

/** Where an error in this pass points: the model file and the layer. */
export function where(model: Model, layer: string): string {
  return `${model.source?.file ?? '<model>'}: layer '${layer}'`;
}

export function layerName(node: Node): string {
  const caffe = node.meta.caffe as { layer?: unknown } | undefined;
  return typeof caffe?.layer === 'string' ? caffe.layer : node.name;
}

/** The Conv nodes that could be decomposed at all (2-D, constant float weight), with their facts. */
export function convSite(model: Model, node: Node): ConvSite | null {
  if (node.opType !== 'Conv' || node.domain !== '') return null;
  const layer = layerName(node);
  const w = node.input(1);
  const t = w?.constant;
  if (!w || !t) {
    logger.info(`'${layer}' is not decomposed: its weight is not a constant`);
    return null;
  }
  if (t.dims.length !== 4) return null;
  if (t.dtype !== 'float32' && t.dtype !== 'float16' && t.dtype !== 'float64') {
    logger.warn(`Unsupported data type ${t.dtype} of layer '${layer}', ignored.`);
    return null;
  }
  const [cout, cinG, kh, kw] = t.dims as Dims4;
  const group = node.attrInt('group', 1);
  const strides = node.attrInts('strides', [1, 1]);
  const dil = node.attrInts('dilations', [1, 1]);
  const p = node.attrInts('pads', [0, 0, 0, 0]);
  const autoPad = node.attrString('auto_pad');
  const ks = node.attrInts('kernel_shape');
  if (ks && (ks[0] !== kh || ks[1] !== kw)) {
    throw new UnsupportedLayerError(
      `${where(model, layer)} has kernel_shape [${ks.join(', ')}] but a [${t.dims.join(', ')}] weight`,
      {
        file: model.source?.file,
        layer,
      },
    );
  }
  return {
    node,
    layer,
    dims: [cout, cinG, kh, kw],
    weight: w,
    pads: [p[0] ?? 0, p[1] ?? 0, p[2] ?? 0, p[3] ?? 0],
    autoPad: autoPad && autoPad !== 'NOTSET' ? autoPad : undefined,
    info: {
      inChannel: cinG * group,
      outChannel: cout,
      kernelH: kh,
      kernelW: kw,
      strideH: strides[0] ?? 1,
      strideW: strides[1] ?? 1,
      group,
      dilationH: dil[0] ?? 1,
      dilationW: dil[1] ?? 1,
    },
  };
}

export function layerInfo(site: ConvSite): OriLayerInfo {
  const i = site.info;
  return {
    name: site.layer,
    in_channels: i.inChannel,
    out_channels: i.outChannel,
    kernel_size: [i.kernelH, i.kernelW],
    stride: [i.strideH, i.strideW],
    dilation: [i.dilationH, i.dilationW],
    groups: i.group,
  };
}

/** One child conv to build: its weight, geometry and whether it takes the bias. */
export interface ChildSpec {
  factor: ConvFactor;
  kernel: [number, number];
  strides: [number, number];
  pads: [number, number, number, number];
  dilations: [number, number];
  autoPad?: string;
  bias: boolean;
}

export function twoLayerSpecs(
  site: ConvSite,
  res: { firstAxis: 'h' | 'w'; first: ConvFactor; last: ConvFactor },
): ChildSpec[] {
  const { info, pads } = site;
  const [pt, pl, pb, pr] = pads;
  const h: Omit<ChildSpec, 'factor' | 'bias'> = {
    kernel: [info.kernelH, 1],
    strides: [info.strideH, 1],
    pads: [pt, 0, pb, 0],
    dilations: [info.dilationH, 1],
    ...(site.autoPad ? { autoPad: site.autoPad } : {}),
  };
  const w: Omit<ChildSpec, 'factor' | 'bias'> = {
    kernel: [1, info.kernelW],
    strides: [1, info.strideW],
    pads: [0, pl, 0, pr],
    dilations: [1, info.dilationW],
    ...(site.autoPad ? { autoPad: site.autoPad } : {}),
  };
  const [a, b] = res.firstAxis === 'h' ? [h, w] : [w, h];
  return [
    { ...a, factor: res.first, bias: false },
    { ...b, factor: res.last, bias: true },
  ];
}

export function tucker2Specs(
  site: ConvSite,
  res: { first: ConvFactor; core: ConvFactor; last: ConvFactor },
): ChildSpec[] {
  const { info } = site;
  const pointwise = (factor: ConvFactor, bias: boolean): ChildSpec => ({
    factor,
    kernel: [1, 1],
    strides: [1, 1],
    pads: [0, 0, 0, 0],
    dilations: [1, 1],
    bias,
  });
  return [
    pointwise(res.first, false),
    {
      factor: res.core,
      kernel: [info.kernelH, info.kernelW],
      strides: [info.strideH, info.strideW],
      pads: site.pads,
      dilations: [info.dilationH, info.dilationW],
      ...(site.autoPad ? { autoPad: site.autoPad } : {}),
      bias: false,
    },
    pointwise(res.last, true),
  ];
}

/** A float64 factor as a tensor of the original weight's dtype. */
export function factorTensor(f: ConvFactor, dtype: string): Tensor {
  if (dtype === 'float64') return new Tensor('float64', f.dims, Float64Array.from(f.weight));
  if (dtype === 'float16') {
    const h = new Uint16Array(f.weight.length);
    for (let i = 0; i < h.length; i++) h[i] = floatToHalf(f.weight[i]!);
    return new Tensor('float16', f.dims, h);
  }
  return Tensor.float32(f.dims, f.weight);
}

export function convOutShape(
  inShape: readonly Dim[] | undefined,
  spec: ChildSpec,
  cout: number,
): Dim[] | undefined {
  if (!inShape || inShape.length !== 4 || spec.autoPad) return undefined;
  const out: Dim[] = [inShape[0] ?? null, cout];
  for (let a = 0; a < 2; a++) {
    const d = inShape[a + 2];
    if (typeof d !== 'number') {
      out.push(null);
      continue;
    }
    const ext = spec.dilations[a]! * (spec.kernel[a]! - 1) + 1;
    out.push(Math.floor((d + spec.pads[a]! + spec.pads[a + 2]! - ext) / spec.strides[a]!) + 1);
  }
  return out;
}

/** Caffe ConvolutionParameter for a child: the original's non-geometric fields, new geometry. */
export function childConvParam(
  original: Record<string, unknown>,
  spec: ChildSpec,
  numOutput: number,
): Record<string, unknown> {
  const rest: Record<string, unknown> = {};
  const geometry = new Set([
    'numOutput',
    'biasTerm',
    'kernelSize',
    'kernelH',
    'kernelW',
    'stride',
    'strideH',
    'strideW',
    'pad',
    'padH',
    'padW',
    'dilation',
    'group',
  ]);
  for (const [k, v] of Object.entries(original)) if (!geometry.has(k)) rest[k] = v;
  const [pt, pl, pb, pr] = spec.pads;
  if (pt !== pb || pl !== pr)
    throw new Error(
      `asymmetric pads [${spec.pads.join(', ')}] cannot be written as a Caffe Convolution`,
    );
  return {
    ...rest,
    numOutput,
    biasTerm: spec.bias,
    padH: pt,
    padW: pl,
    kernelH: spec.kernel[0],
    kernelW: spec.kernel[1],
    strideH: spec.strides[0],
    strideW: spec.strides[1],
    ...(spec.dilations[0] !== 1 || spec.dilations[1] !== 1
      ? { dilation: [...spec.dilations] }
      : {}),
  };
}

/**
 * Replaces the conv of `site` by the children of `specs`; returns their layer names. `shared`
 * holds the child weight initializers of an earlier conv with the same weight (filled in on first
 * use), so convs that shared parameters still do.
 */
export function replaceConv(
  model: Model,
  site: ConvSite,
  specs: ChildSpec[],
  shared: Value[],
): string[] {
  const g: Graph = model.graph;
  const node = site.node;
  const x = node.input(0)!;
  const bias = node.input(2);
  const out = node.output(0);
  const dtype = site.weight.constant!.dtype;
  const caffe = node.meta.caffe as { layer: string; type?: string } | undefined;
  const original = node.meta.caffeLayer as Record<string, unknown> | undefined;
  const names = specs.map((_, i) => g.uniqueName(`${site.layer}.${i}`));
  let input: Value = x;
  let inShape = x.type?.shape;
  // release the original output so the last child can produce it
  node.replaceOutput(0, g.newValue(`${out.name}.replaced`));
  specs.forEach((spec, i) => {
    const name = names[i]!;
    const last = i === specs.length - 1;
    const cout = spec.factor.dims[0];
    let output: Value;
    if (last) {
      output = out;
    } else {
      // the blob between children is named after the child layer, as Caffe tops usually are
      const shape = convOutShape(inShape, spec, cout);
      output = new Value(name, {
        dtype: out.type?.dtype ?? dtype,
        ...(shape ? { shape } : {}),
      });
      g.claimName(name);
    }
    const w =
      shared[i] ??
      g.addInitializer(g.uniqueName(`${name}.weight`), factorTensor(spec.factor, dtype));
    shared[i] = w;
    const attrs: Record<string, Attr> = {
      group: attr.int(1),
      kernel_shape: attr.ints(spec.kernel),
      strides: attr.ints(spec.strides),
      dilations: attr.ints(spec.dilations),
      ...(spec.autoPad ? { auto_pad: attr.string(spec.autoPad) } : { pads: attr.ints(spec.pads) }),
    };
    const meta: Record<string, unknown> = {};
    if (caffe) {
      meta.caffe = { layer: name, type: caffe.type ?? 'Convolution' };
      if (original) {
        const { blobs: _b, bottom, top, param, convolutionParam, ...params } = original;
        void _b;
        const paramSpecs = Array.isArray(param)
          ? spec.bias
            ? param
            : param.slice(0, 1)
          : undefined;
        meta.caffeLayer = {
          ...params,
          name,
          type: 'Convolution',
          bottom: i === 0 ? bottom : [names[i - 1]],
          top: last ? top : [name],
          ...(paramSpecs ? { param: paramSpecs } : {}),
          convolutionParam: childConvParam(
            (convolutionParam as Record<string, unknown> | undefined) ?? {},
            spec,
            cout,
          ),
        };
      }
    }
    const child = new Node({
      name,
      opType: 'Conv',
      inputs: spec.bias && bias ? [input, w, bias] : [input, w],
      outputs: [output],
      attrs,
      meta,
    });
    g.addNode(child, { before: node });
    input = output;
    inShape = output.type?.shape;
  });
  g.removeNode(node);
  // drop the original weight once no conv reads it (other unused initializers are not ours)
  if (site.weight.useCount === 0 && g.initializers.get(site.weight.name) === site.weight) {
    g.initializers.delete(site.weight.name);
  }
  return names;
}
