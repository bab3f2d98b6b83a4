import { cloneModel, type Model, type Node, type Value } from '../ir';
import { UnsupportedLayerError } from '../errors';
import { LOWERINGS } from './lowerings';

/** Called with the tapped value's data after each forward. */
export type TapCallback = (data: Float32Array, dims: readonly number[]) => void;

/** What a tap may tell the runtime beyond its callback. */
export interface TapHints {
  /** False once the tap ignores further forwards: the runtime stops fetching its value. */
  active?(): boolean;
}

export interface Tap extends TapHints {
  value: string;
  callback: TapCallback;
}

export interface LoweringContext {
  model: Model;
  /** Asks the runtime to fetch `value` on every forward and hand it to `callback`. */
  tap(value: Value, callback: TapCallback, hints?: TapHints): void;
}

/**
 * Rewrites one amct-domain node into standard ONNX nodes (or removes it); see `lowerings.ts`.
 */
export type LowerFn = (node: Node, ctx: LoweringContext) => void;

export const AMCT_DOMAIN = 'amct';

/**
 * Produces a copy of `model` that plain ONNX Runtime can run, plus the taps the amct operators
 * asked for. The input model is left untouched.
 */
export function lowerForRuntime(model: Model): { model: Model; taps: Tap[] } {
  const lowered = cloneModel(model);
  const taps: Tap[] = [];
  const ctx: LoweringContext = {
    model: lowered,
    tap: (value, callback, hints = {}) => taps.push({ ...hints, value: value.name, callback }),
  };
  for (const node of [...lowered.graph.nodes]) {
    if (node.domain !== AMCT_DOMAIN) continue;
    const fn = LOWERINGS[node.opType];
    if (!fn) {
      throw new UnsupportedLayerError(
        `the runtime cannot run node '${node.name}' of type amct.${node.opType}`,
        { layer: node.name },
      );
    }
    fn(node, ctx);
  }
  lowered.opsetImports = lowered.opsetImports.filter((o) => o.domain !== AMCT_DOMAIN);
  return { model: lowered, taps };
}
