;; Histogram kernels of src/quant/histogram.ts, in WebAssembly with 128-bit SIMD.
;; Source of histogram-wasm.ts (generated: npm run build:wasm; a test checks they match).
;;
;; Memory layout, decided by the caller: four int32 count lanes of nb bins each, then the values
;; to scan or count as float32 (a chunk of a batch). The bin rule is histc's, computed in float64
;; (as the tests' reference does): bin = min(trunc((v - a) * k), nb - 1), for values already known
;; to lie in the range.
(module
  (memory (export "memory") 1)

  ;; Range of the batch at $p (n float32): min and max into the globals; returns 1 when a NaN is
  ;; present (the extremes are then meaningless). pmin / pmax are one instruction each on x86
  ;; (min / max cost several for their NaN and ±0 rules); NaN is caught by a v != v mask instead.
  (global $min (export "min") (mut f32) (f32.const 0))
  (global $max (export "max") (mut f32) (f32.const 0))
  (func (export "scan") (param $p i32) (param $n i32) (result i32)
    (local $end i32) (local $vmin v128) (local $vmax v128) (local $v v128) (local $nan v128)
    (local $mn f32) (local $mx f32) (local $x f32)
    (local.set $vmin (f32x4.splat (f32.load (local.get $p))))
    (local.set $vmax (local.get $vmin))
    ;; whole vectors
    (local.set $end (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $vec
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $vmin (f32x4.pmin (local.get $vmin) (local.get $v)))
        (local.set $vmax (f32x4.pmax (local.get $vmax) (local.get $v)))
        (local.set $nan (v128.or (local.get $nan) (f32x4.ne (local.get $v) (local.get $v))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $vec)))
    (local.set $mn (f32.min (f32.min (f32x4.extract_lane 0 (local.get $vmin)) (f32x4.extract_lane 1 (local.get $vmin)))
                            (f32.min (f32x4.extract_lane 2 (local.get $vmin)) (f32x4.extract_lane 3 (local.get $vmin)))))
    (local.set $mx (f32.max (f32.max (f32x4.extract_lane 0 (local.get $vmax)) (f32x4.extract_lane 1 (local.get $vmax)))
                            (f32.max (f32x4.extract_lane 2 (local.get $vmax)) (f32x4.extract_lane 3 (local.get $vmax)))))
    ;; the last n mod 4 values
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $tdone
      (loop $tail
        (br_if $tdone (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $x (f32.load (local.get $p)))
        (local.set $mn (f32.min (local.get $mn) (local.get $x)))
        (local.set $mx (f32.max (local.get $mx) (local.get $x)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $tail)))
    (global.set $min (local.get $mn))
    (global.set $max (local.get $mx))
    (i32.or (v128.any_true (local.get $nan))
            (i32.or (f32.ne (local.get $mn) (local.get $mn)) (f32.ne (local.get $mx) (local.get $mx)))))

  ;; Adds $inc to the bin of every value of the batch at $p (n float32, all within the range), in
  ;; the lanes at $lanes: value i goes to lane i mod 4, so runs of one value (ReLU zeros) do not
  ;; serialize on one slot. $inc = -1 takes back what a count of the same batch added.
  (func (export "count") (param $p i32) (param $n i32) (param $lanes i32) (param $nb i32)
                         (param $a f64) (param $k f64) (param $inc i32)
    (local $end i32) (local $va v128) (local $vk v128) (local $top v128) (local $off v128)
    (local $v v128) (local $lo v128) (local $hi v128) (local $idx v128) (local $addr i32)
    (local $b i32) (local $stride i32) (local $magic v128)
    (local.set $magic (f64x2.splat (f64.const 4503599627370496)))
    (local.set $va (f64x2.splat (local.get $a)))
    (local.set $vk (f64x2.splat (local.get $k)))
    (local.set $top (i32x4.splat (i32.sub (local.get $nb) (i32.const 1))))
    ;; byte offset of lane j's bin 0: $lanes + j * nb * 4
    (local.set $stride (i32.shl (local.get $nb) (i32.const 2)))
    (local.set $off (i32x4.splat (local.get $lanes)))
    (local.set $off (i32x4.replace_lane 1 (local.get $off) (i32.add (local.get $lanes) (local.get $stride))))
    (local.set $off (i32x4.replace_lane 2 (local.get $off) (i32.add (local.get $lanes) (i32.shl (local.get $stride) (i32.const 1)))))
    (local.set $off (i32x4.replace_lane 3 (local.get $off) (i32.add (local.get $lanes) (i32.mul (local.get $stride) (i32.const 3)))))
    (local.set $end (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $vec
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        ;; float64 two values at a time; floor, then + 2^52 leaves the integer in the low 32 bits
        ;; of each float64 (exact: 0 <= floor(...) <= nb < 2^31). Measured 25 % faster than
        ;; i32x4.trunc_sat_f64x2_s_zero, whose saturation costs several instructions on x86.
        (local.set $lo (f64x2.add (f64x2.floor
          (f64x2.mul (f64x2.sub (f64x2.promote_low_f32x4 (local.get $v)) (local.get $va)) (local.get $vk)))
          (local.get $magic)))
        (local.set $hi (f64x2.add (f64x2.floor
          (f64x2.mul (f64x2.sub (f64x2.promote_low_f32x4
            (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))
            (local.get $va)) (local.get $vk)))
          (local.get $magic)))
        (local.set $idx (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $lo) (local.get $hi)))
        (local.set $idx (i32x4.add (i32x4.shl (i32x4.min_s (local.get $idx) (local.get $top)) (i32.const 2))
                                   (local.get $off)))
        (local.set $addr (i32x4.extract_lane 0 (local.get $idx)))
        (i32.store (local.get $addr) (i32.add (i32.load (local.get $addr)) (local.get $inc)))
        (local.set $addr (i32x4.extract_lane 1 (local.get $idx)))
        (i32.store (local.get $addr) (i32.add (i32.load (local.get $addr)) (local.get $inc)))
        (local.set $addr (i32x4.extract_lane 2 (local.get $idx)))
        (i32.store (local.get $addr) (i32.add (i32.load (local.get $addr)) (local.get $inc)))
        (local.set $addr (i32x4.extract_lane 3 (local.get $idx)))
        (i32.store (local.get $addr) (i32.add (i32.load (local.get $addr)) (local.get $inc)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $vec)))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $tdone
      (loop $tail
        (br_if $tdone (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $b (i32.trunc_sat_f64_s
          (f64.mul (f64.sub (f64.promote_f32 (f32.load (local.get $p))) (local.get $a)) (local.get $k))))
        (if (i32.gt_s (local.get $b) (i32.sub (local.get $nb) (i32.const 1)))
          (then (local.set $b (i32.sub (local.get $nb) (i32.const 1)))))
        (local.set $addr (i32.add (local.get $lanes) (i32.shl (local.get $b) (i32.const 2))))
        (i32.store (local.get $addr) (i32.add (i32.load (local.get $addr)) (local.get $inc)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $tail))))
)
