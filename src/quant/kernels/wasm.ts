/** Instantiates the WebAssembly kernels of this folder, each compiled once per process. */

/** The part of the WebAssembly JS API used here (@types/node 20 does not declare it). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
};

const compiled = new Map<string, object>();

/** A fresh instance (own memory) of the module whose binary is `base64`. */
export function instantiateKernel<Exports>(base64: string): Exports {
  let module = compiled.get(base64);
  if (!module) {
    module = new WebAssembly.Module(Buffer.from(base64, 'base64'));
    compiled.set(base64, module);
  }
  return new WebAssembly.Instance(module).exports as Exports;
}

export const WASM_PAGE = 65536;

/** Grows `memory` to hold at least `bytes`. */
export function reserveMemory(
  memory: { readonly buffer: ArrayBuffer; grow(pages: number): number },
  bytes: number,
): void {
  const have = memory.buffer.byteLength;
  if (bytes > have) memory.grow(Math.ceil((bytes - have) / WASM_PAGE));
}
