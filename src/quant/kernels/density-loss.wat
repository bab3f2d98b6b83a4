;; The calibration searches' losses over a histogram, in WebAssembly: IFMR's (src/quant/ifmr.ts,
;; histogramQuantLoss) and HFMG's (src/quant/hfmg.ts). Source of density-loss-wasm.ts (generated:
;; npm run build:wasm; a test checks they match).
;;
;; The histogram is a piecewise-constant density rho with prefix moments
;; P_m[b] = integral_min^{edge b} rho(t) t^m dt (m = 0, 1, 2), so that
;; integral_u^v rho(t) (t - q)^2 dt costs O(1) for any u, v. A candidate's loss is then a sum
;; over its quantization cells (2^bits + 2 tails), not over the bins.
;;
;; Why not TypeScript. IFMR evaluates 61 candidates x ~258 cells once per layer, so the loop
;; mostly ran before V8 had optimized it: 11 ms for the first layer, 1.5 ms for the next ones,
;; 0.56 ms hot (mnist-8's three layers cost 15-20 % of its plain inference time); here about 1 ms
;; for the first layer, 0.4 ms after. Its operations are the float64 operations of the TypeScript
;; it replaced, in the same order: 14,400 random cases came out bit for bit equal, and the
;; records of mnist-8, LeNet and UltraFace byte for byte. HFMG evaluates up to 3/4 of the bin
;; count in candidate ranges, each over every bin in AMCT's formulation: in TypeScript,
;; UltraFace's 41 searches at the default 4096 bins took 14.7 s; per destination bin from the
;; moments, 0.38 s, choosing the same ranges.
;;
;; Memory, float64, laid out by `prepare` for nb bins: counts [nb] at byte 0 (written by the
;; caller), density [nb], then P_0, P_1, P_2 [nb + 1] each.
(module
  (memory (export "memory") 1)

  (global $nb (mut i32) (i32.const 0))
  (global $min (mut f64) (f64.const 0))
  (global $max (mut f64) (f64.const 0))
  (global $w (mut f64) (f64.const 0))
  (global $dens (mut i32) (i32.const 0))
  (global $p0 (mut i32) (i32.const 0))
  (global $p1 (mut i32) (i32.const 0))
  (global $p2 (mut i32) (i32.const 0))
  ;; the moments left by $momentsAt
  (global $r0 (mut f64) (f64.const 0))
  (global $r1 (mut f64) (f64.const 0))
  (global $r2 (mut f64) (f64.const 0))

  ;; Density and prefix moments of the nb counts at byte 0, over [min, max] with bin width w
  ;; (> 0); the last bin ends at max exactly.
  (func (export "prepare") (param $n i32) (param $lo f64) (param $hi f64) (param $width f64)
    (local $b i32) (local $a f64) (local $e f64) (local $c f64) (local $d f64)
    (local $s0 f64) (local $s1 f64) (local $s2 f64) (local $o i32)
    (global.set $nb (local.get $n))
    (global.set $min (local.get $lo))
    (global.set $max (local.get $hi))
    (global.set $w (local.get $width))
    (global.set $dens (i32.shl (local.get $n) (i32.const 3)))
    (global.set $p0 (i32.shl (local.get $n) (i32.const 4)))
    (global.set $p1 (i32.add (global.get $p0) (i32.shl (i32.add (local.get $n) (i32.const 1)) (i32.const 3))))
    (global.set $p2 (i32.add (global.get $p1) (i32.shl (i32.add (local.get $n) (i32.const 1)) (i32.const 3))))
    (f64.store (global.get $p0) (f64.const 0))
    (f64.store (global.get $p1) (f64.const 0))
    (f64.store (global.get $p2) (f64.const 0))
    (block $done
      (loop $bins
        (br_if $done (i32.ge_s (local.get $b) (local.get $n)))
        (local.set $a (f64.add (local.get $lo) (f64.mul (f64.convert_i32_s (local.get $b)) (local.get $width))))
        (local.set $e
          (if (result f64) (i32.eq (local.get $b) (i32.sub (local.get $n) (i32.const 1)))
            (then (local.get $hi))
            (else (f64.add (local.get $lo)
              (f64.mul (f64.convert_i32_s (i32.add (local.get $b) (i32.const 1))) (local.get $width))))))
        (local.set $o (i32.shl (local.get $b) (i32.const 3)))
        (local.set $c (f64.load (local.get $o)))
        (local.set $d (f64.div (local.get $c) (f64.sub (local.get $e) (local.get $a))))
        (f64.store (i32.add (global.get $dens) (local.get $o)) (local.get $d))
        (local.set $s0 (f64.add (local.get $s0) (local.get $c)))
        (local.set $s1 (f64.add (local.get $s1) (f64.div
          (f64.mul (local.get $d) (f64.sub (f64.mul (local.get $e) (local.get $e))
                                           (f64.mul (local.get $a) (local.get $a))))
          (f64.const 2))))
        (local.set $s2 (f64.add (local.get $s2) (f64.div
          (f64.mul (local.get $d) (f64.sub (f64.mul (f64.mul (local.get $e) (local.get $e)) (local.get $e))
                                           (f64.mul (f64.mul (local.get $a) (local.get $a)) (local.get $a))))
          (f64.const 3))))
        (local.set $o (i32.add (local.get $o) (i32.const 8)))
        (f64.store (i32.add (global.get $p0) (local.get $o)) (local.get $s0))
        (f64.store (i32.add (global.get $p1) (local.get $o)) (local.get $s1))
        (f64.store (i32.add (global.get $p2) (local.get $o)) (local.get $s2))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $bins))))

  ;; The moments integral_min^x rho(t) t^m dt (m = 0, 1, 2) into $r0, $r1, $r2.
  (func $momentsAt (param $x f64)
    (local $bf f64) (local $o i32) (local $a f64) (local $d f64)
    (if (f64.le (local.get $x) (global.get $min))
      (then
        (global.set $r0 (f64.const 0))
        (global.set $r1 (f64.const 0))
        (global.set $r2 (f64.const 0))
        (return)))
    (if (f64.gt (local.get $x) (global.get $max)) (then (local.set $x (global.get $max))))
    (local.set $bf (f64.floor (f64.div (f64.sub (local.get $x) (global.get $min)) (global.get $w))))
    (if (f64.ge (local.get $bf) (f64.convert_i32_s (global.get $nb)))
      (then (local.set $bf (f64.convert_i32_s (i32.sub (global.get $nb) (i32.const 1))))))
    (local.set $a (f64.add (global.get $min) (f64.mul (local.get $bf) (global.get $w))))
    (local.set $o (i32.shl (i32.trunc_f64_s (local.get $bf)) (i32.const 3)))
    (local.set $d (f64.load (i32.add (global.get $dens) (local.get $o))))
    (global.set $r0 (f64.add (f64.load (i32.add (global.get $p0) (local.get $o)))
      (f64.mul (local.get $d) (f64.sub (local.get $x) (local.get $a)))))
    (global.set $r1 (f64.add (f64.load (i32.add (global.get $p1) (local.get $o)))
      (f64.div (f64.mul (local.get $d) (f64.sub (f64.mul (local.get $x) (local.get $x))
                                                (f64.mul (local.get $a) (local.get $a))))
               (f64.const 2))))
    (global.set $r2 (f64.add (f64.load (i32.add (global.get $p2) (local.get $o)))
      (f64.div (f64.mul (local.get $d) (f64.sub (f64.mul (f64.mul (local.get $x) (local.get $x)) (local.get $x))
                                                (f64.mul (f64.mul (local.get $a) (local.get $a)) (local.get $a))))
               (f64.const 3)))))

  ;; integral_u^v rho(t) (t - q)^2 dt from the moments (f0, f1, f2) at u and those at v in $r*.
  (func $cell (param $f0 f64) (param $f1 f64) (param $f2 f64) (param $q f64) (result f64)
    (f64.add
      (f64.sub (f64.sub (global.get $r2) (local.get $f2))
               (f64.mul (f64.mul (f64.const 2) (local.get $q)) (f64.sub (global.get $r1) (local.get $f1))))
      (f64.mul (f64.mul (local.get $q) (local.get $q)) (f64.sub (global.get $r0) (local.get $f0)))))

  ;; C round (halves away from zero) of float32(x), times s: a clip bound's grid point.
  (func $gridPoint (param $x f64) (param $s f64) (result f64)
    (local $v f64) (local $f f64) (local $neg i32)
    (local.set $v (f64.promote_f32 (f32.demote_f64 (f64.div (local.get $x) (local.get $s)))))
    (local.set $neg (f64.lt (local.get $v) (f64.const 0)))
    (if (local.get $neg) (then (local.set $v (f64.neg (local.get $v)))))
    ;; Math.round of a non-negative value: the floor, plus one from a fraction of one half up
    (local.set $f (f64.floor (local.get $v)))
    (if (f64.ge (f64.sub (local.get $v) (local.get $f)) (f64.const 0.5))
      (then (local.set $f (f64.add (local.get $f) (f64.const 1)))))
    (if (local.get $neg) (then (local.set $f (f64.neg (local.get $f)))))
    (f64.mul (local.get $f) (local.get $s)))

;; HFMG's loss of the range [lo, hi] cut into n destination bins of width dw:
  ;; integral rho(x) (x - c(x))^2 dx, c(x) the centre of x's destination bin, values below lo or
  ;; above hi counted in the first or last bin (AMCT's clamp of the bin index). lo and hi lie on
  ;; source-bin edges, so no source bin straddles them.
  (func (export "hfmgLoss") (param $lo f64) (param $hi f64) (param $dw f64) (param $n i32) (result f64)
    (local $half f64) (local $sum f64) (local $k i32) (local $e f64)
    (local $f0 f64) (local $f1 f64) (local $f2 f64)
    (local.set $half (f64.div (local.get $dw) (f64.const 2)))
    ;; below lo: into the first bin's centre
    (if (f64.gt (local.get $lo) (global.get $min))
      (then
        (call $momentsAt (local.get $lo))
        (local.set $sum (call $cell (f64.const 0) (f64.const 0) (f64.const 0)
          (f64.add (local.get $lo) (local.get $half))))))
    ;; above hi: into the last bin's centre
    (if (f64.lt (local.get $hi) (global.get $max))
      (then
        (call $momentsAt (local.get $hi))
        (local.set $f0 (global.get $r0))
        (local.set $f1 (global.get $r1))
        (local.set $f2 (global.get $r2))
        (call $momentsAt (global.get $max))
        (local.set $sum (f64.add (local.get $sum)
          (call $cell (local.get $f0) (local.get $f1) (local.get $f2)
            (f64.add (local.get $lo) (f64.add (f64.mul (f64.convert_i32_s (i32.sub (local.get $n) (i32.const 1)))
                                                      (local.get $dw))
                                             (local.get $half))))))))
    ;; the n destination bins
    (call $momentsAt (local.get $lo))
    (block $done
      (loop $bins
        (br_if $done (i32.ge_s (local.get $k) (local.get $n)))
        (local.set $f0 (global.get $r0))
        (local.set $f1 (global.get $r1))
        (local.set $f2 (global.get $r2))
        (local.set $e
          (if (result f64) (i32.eq (local.get $k) (i32.sub (local.get $n) (i32.const 1)))
            (then (local.get $hi))
            (else (f64.add (local.get $lo)
              (f64.mul (f64.convert_i32_s (i32.add (local.get $k) (i32.const 1))) (local.get $dw))))))
        (call $momentsAt (local.get $e))
        (local.set $sum (f64.add (local.get $sum)
          (call $cell (local.get $f0) (local.get $f1) (local.get $f2)
            (f64.add (local.get $lo) (f64.add (f64.mul (f64.convert_i32_s (local.get $k)) (local.get $dw))
                                             (local.get $half))))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $bins)))
    (local.get $sum))

  ;; integral rho(x) (Q(clip(x, lo, hi)) - x)^2 dx with step s: both tails plus every cell of
  ;; [lo, hi] that meets the data. The caller keeps (hi - lo) / s + 2 <= nb.
  (func (export "loss") (param $lo f64) (param $hi f64) (param $s f64) (result f64)
    (local $qLo f64) (local $qHi f64) (local $sum f64) (local $u0 f64) (local $v0 f64)
    (local $f0 f64) (local $f1 f64) (local $f2 f64) (local $j f64) (local $q f64)
    (local.set $qLo (call $gridPoint (local.get $lo) (local.get $s)))
    (local.set $qHi (call $gridPoint (local.get $hi) (local.get $s)))
    (local.set $u0 (f64.max (local.get $lo) (global.get $min)))
    (local.set $v0 (f64.min (local.get $hi) (global.get $max)))
    ;; lower tail, [min, lo] clipped to lo's grid point
    (if (f64.gt (local.get $lo) (global.get $min))
      (then
        (call $momentsAt (f64.min (local.get $lo) (global.get $max)))
        (local.set $sum (f64.add (local.get $sum)
          (call $cell (f64.const 0) (f64.const 0) (f64.const 0) (local.get $qLo))))))
    ;; upper tail, [hi, max] clipped to hi's grid point
    (if (f64.lt (local.get $hi) (global.get $max))
      (then
        (call $momentsAt (f64.max (local.get $hi) (global.get $min)))
        (local.set $f0 (global.get $r0))
        (local.set $f1 (global.get $r1))
        (local.set $f2 (global.get $r2))
        (call $momentsAt (global.get $max))
        (local.set $sum (f64.add (local.get $sum)
          (call $cell (local.get $f0) (local.get $f1) (local.get $f2) (local.get $qHi))))))
    (if (f64.le (local.get $v0) (local.get $u0)) (then (return (local.get $sum))))
    ;; the cells [(j - 1/2) s, (j + 1/2) s) inside [u0, v0]
    (call $momentsAt (local.get $u0))
    (local.set $j (f64.floor (f64.add (f64.div (local.get $u0) (local.get $s)) (f64.const 0.5))))
    (block $done
      (loop $cells
        (br_if $done (i32.eqz (f64.lt
          (f64.sub (f64.mul (local.get $j) (local.get $s)) (f64.div (local.get $s) (f64.const 2)))
          (local.get $v0))))
        (local.set $f0 (global.get $r0))
        (local.set $f1 (global.get $r1))
        (local.set $f2 (global.get $r2))
        (local.set $q (f64.mul (local.get $j) (local.get $s)))
        (call $momentsAt (f64.min (local.get $v0) (f64.mul (f64.add (local.get $j) (f64.const 0.5)) (local.get $s))))
        (local.set $sum (f64.add (local.get $sum)
          (call $cell (local.get $f0) (local.get $f1) (local.get $f2) (local.get $q))))
        (local.set $j (f64.add (local.get $j) (f64.const 1)))
        (br $cells)))
    (local.get $sum))
)
