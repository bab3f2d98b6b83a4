/** How the example CNNs (train_digits.ts, train_fashion.ts) are trained: seeded SGD with momentum. */
export interface TrainOptions {
  /** seeds the initial weights and the shuffles: the same options give the same model */
  seed: number;
  epochs: number;
  batchSize: number;
  lr: number;
  momentum: number;
  weightDecay: number;
}
