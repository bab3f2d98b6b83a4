import * as fs from 'fs';
import { logger } from '../log/logger';

/**
 * Options of amct-ts's PTQ beyond AMCT's arguments.
 *
 * int8Target: ORT's x86 integer kernels without VNNI multiply uint8 activations by int8 weights
 * with vpmaddubsw, which saturates the int16 sum of two products (255*127*2 > 32767). With 7-bit
 * weights (AMCT's quant_bits 7) every pair sum fits, so ORT's INT8 model computes exactly what the
 * simulation computes. 'auto' picks 7 bits when the CPU lacks VNNI, 'vnni' keeps 8 bits,
 * 'avx2' forces 7 bits.
 */
export interface QuantOptions {
  int8Target?: 'auto' | 'vnni' | 'avx2' | 'ascend';
  /** 'histogram': flat memory (default); 'exact': AMCT's store-everything IFMR. */
  calibrationMode?: 'histogram' | 'exact';
}

let vnniCache: boolean | null = null;

export function cpuHasVnni(): boolean {
  if (vnniCache === null) {
    try {
      const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
      vnniCache = /\b(avx512_vnni|avx_vnni|avx512vnni)\b/.test(info) || process.arch === 'arm64';
    } catch {
      vnniCache = process.arch === 'arm64';
    }
  }
  return vnniCache;
}

/** Weight bits the fake-quant / ORT INT8 model uses for this target. */
export function weightBitsFor(options: QuantOptions): number {
  const target = options.int8Target ?? 'auto';
  if (target === 'ascend' || target === 'vnni') return 8;
  if (target === 'avx2') return 7;
  const vnni = cpuHasVnni();
  if (!vnni)
    logger.debug('CPU without VNNI: weights quantized to 7 bits so ORT INT8 kernels stay exact');
  return vnni ? 8 : 7;
}
