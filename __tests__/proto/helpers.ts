import type * as protobuf from 'protobufjs';
import { TextFormatError } from '../../src/errors';
import { caffeType, parseText } from '../../src/proto';

export const NET = caffeType('NetParameter');

/** The TextFormatError that parsing `text` throws. */
export function failure(
  text: string,
  type: protobuf.Type = NET,
  file = 'bad.prototxt',
): TextFormatError {
  try {
    parseText(type, text, file);
  } catch (e) {
    expect(e).toBeInstanceOf(TextFormatError);
    return e as TextFormatError;
  }
  throw new Error(`parsed without error: ${text}`);
}

/** 1-based line and column of the first occurrence of `needle` (the nth with `nth`). */
export function placeOf(text: string, needle: string, nth = 0): { line: number; column: number } {
  let i = -1;
  for (let k = 0; k <= nth; k++) i = text.indexOf(needle, i + 1);
  if (i < 0) throw new Error(`'${needle}' not in text`);
  const before = text.slice(0, i).split('\n');
  return { line: before.length, column: before[before.length - 1]!.length + 1 };
}

export function expectError(
  text: string,
  want: { at?: { line: number; column: number }; key?: string; message: RegExp },
  type: protobuf.Type = NET,
): TextFormatError {
  const e = failure(text, type);
  expect(e.file).toBe('bad.prototxt');
  if (want.at) {
    expect({ line: e.line, column: e.column }).toEqual(want.at);
    expect(e.message.startsWith(`bad.prototxt:${want.at.line}:${want.at.column}: `)).toBe(true);
  }
  expect(e.key).toBe(want.key);
  if (want.key) expect(e.message).toContain(`${want.key}: `);
  expect(e.message).toMatch(want.message);
  return e;
}
