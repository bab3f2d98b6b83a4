import { AmctError } from '../errors';
import type { Model } from '../ir';
import { logger } from '../log/logger';

export interface PassResult {
  modified: boolean;
}

/** A graph transformation named after the AMCT concept it implements. */
export interface Pass<Ctx = unknown> {
  readonly name: string;
  run(model: Model, ctx: Ctx): PassResult;
}

export class PassError extends AmctError {}

/** Runs passes in order; a failure names the pass. */
export function runPasses<Ctx>(model: Model, passes: readonly Pass<Ctx>[], ctx: Ctx): void {
  for (const pass of passes) {
    try {
      const { modified } = pass.run(model, ctx);
      logger.debug(`pass ${pass.name}: ${modified ? 'modified the graph' : 'nothing to do'}`);
    } catch (e) {
      if (e instanceof AmctError) throw e;
      throw new PassError(`pass ${pass.name} failed: ${(e as Error).message}`, {}, { cause: e });
    }
  }
}
