import type { Value } from '../../../ir';
import type { LayerContext } from '../context';
import { bool } from './common';

/**
 * PReLU -> PRelu. Blob: slope [C] ([1] with channel_shared). The initializer `<layer>.slope` is
 * stored as [C, 1, ...] so it broadcasts over the channel axis 1 (same data as the blob).
 */
export function lowerPReLU(ctx: LayerContext): Value[] {
  ctx.expectArity(1, 1);
  const shape = ctx.shape(0);
  const shared = bool(ctx.param('preluParam'), 'channelShared', false);
  let dims = [1];
  let onnxDims = [1];
  if (!shared) {
    const c = shape.length >= 2 ? shape[1] : 1;
    if (typeof c !== 'number') throw ctx.formatError('needs a known channel count');
    dims = [c];
    onnxDims = [c, ...new Array<number>(Math.max(0, shape.length - 2)).fill(1)];
  }
  const [slope] = ctx.weights([{ role: 'slope', dims, onnxDims }]);
  return [ctx.op('PRelu', [ctx.bottom(0), slope!], ctx.top(0, shape))];
}
