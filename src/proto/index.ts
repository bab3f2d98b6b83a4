export { amctType, caffeType } from './schemas';
export {
  fieldPathAt,
  fromPlain,
  parseText,
  parseTextFile,
  printText,
  toPlain,
  writeTextFile,
  type Plain,
} from './text-format';
