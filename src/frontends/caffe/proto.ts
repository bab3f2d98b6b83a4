/** Caffe's NetParameter from a prototxt (text) or a caffemodel (binary), as plain objects. */
import * as fs from 'fs';
import { ModelFormatError } from '../../errors';
import { caffeType, parseTextFile, toPlain } from '../../proto';
import type { NetParameterPlain } from './types';

export function parseNetPrototxt(file: string): NetParameterPlain {
  const type = caffeType('NetParameter');
  return toPlain(type, parseTextFile(type, file)) as NetParameterPlain;
}

/** Decodes a binary NetParameter (a .caffemodel); `file` names it in errors. */
export function decodeNetParameter(buf: Uint8Array, file: string): NetParameterPlain {
  const type = caffeType('NetParameter');
  try {
    return toPlain(type, type.decode(buf)) as NetParameterPlain;
  } catch (e) {
    const msg = (e as Error).message;
    // protobufjs reads past the end of a cut-off file: "index out of range: 1000 + 12 > 1008"
    const why = /index out of range/.test(msg)
      ? `it is truncated or not a caffemodel (${msg})`
      : msg;
    throw new ModelFormatError(
      `${file}: cannot decode the caffemodel (binary NetParameter): ${why}`,
      { file },
      { cause: e },
    );
  }
}

export function readCaffemodel(file: string): NetParameterPlain {
  return decodeNetParameter(fs.readFileSync(file), file);
}
