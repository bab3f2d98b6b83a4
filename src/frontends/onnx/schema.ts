import * as path from 'path';
import * as fs from 'fs';
import * as protobuf from 'protobufjs';

let root: protobuf.Root | null = null;

/** Locates the package's `proto/` folder from src/ (ts-jest, tsx) or dist/src/ (built). */
export function protoDir(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'proto');
    if (fs.existsSync(path.join(candidate, 'onnx.proto'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find the proto/ folder above ${__dirname}`);
}

export function onnxRoot(): protobuf.Root {
  root ??= protobuf.loadSync(path.join(protoDir(), 'onnx.proto'));
  return root;
}

export function onnxType(name: string): protobuf.Type {
  return onnxRoot().lookupType(`onnx.${name}`);
}
