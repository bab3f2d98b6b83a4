/**
 * The protobuf schemas in `proto/`, loaded once through protobufjs reflection. Field names are
 * camelCased by protobufjs (`convolutionParam`); the text format still reads and prints the
 * .proto names (`convolution_param`).
 */
import * as path from 'path';
import * as protobuf from 'protobufjs';
import { protoDir } from '../frontends/onnx/schema';

const roots = new Map<string, protobuf.Root>();

function root(file: string): protobuf.Root {
  let r = roots.get(file);
  if (!r) {
    r = protobuf.loadSync(path.join(protoDir(), file));
    r.resolveAll();
    roots.set(file, r);
  }
  return r;
}

/** A message type of Caffe's schema (`proto/caffe.proto`), e.g. `NetParameter`. */
export function caffeType(name: string): protobuf.Type {
  return root('caffe.proto').lookupType(`caffe.${name}`);
}

/** A message type of AMCT's own files (`proto/amct.proto`), e.g. `ScaleOffsetRecord`. */
export function amctType(name: string): protobuf.Type {
  return root('amct.proto').lookupType(`amct.${name}`);
}
