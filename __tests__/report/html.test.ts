/**
 * The HTML report: unit checks of the page text, then the real thing in headless Chromium
 * (Debian's /usr/bin/chromium through playwright-core): it loads without console errors, the
 * charts are laid out and visible in a screenshot, and the layer selector switches histograms.
 * The browser part runs only where /usr/bin/chromium exists (apt-get install -y chromium).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { main as demo } from '../../examples/demo';
import { readPng } from '../../src/data/png';
import { clipRange } from '../../src/report/activations';
import { analyzeFiles, readAnalysis, type QuantAnalysis } from '../../src/report/analysis';
import {
  DIGITS_INPUT,
  DIGITS_MODEL,
  digitsBatch,
  loadDigits,
  split,
} from '../../examples/common/digits';
import { escapeHtml, niceTicks, renderReportHtml } from '../../src/report/html';
import { readQuantJson, type QuantJson } from '../../src/report/quant-json';

const CHROMIUM = '/usr/bin/chromium';
const HAS_CHROMIUM = fs.existsSync(CHROMIUM);

let dir: string;
let quant: QuantJson;
let analysis: QuantAnalysis;
let reportFile: string;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amct-report-'));
  const r = await demo({ embedded: true, outDir: dir, quiet: true });
  reportFile = r.report!;
  quant = readQuantJson(path.join(dir, 'results', 'digits_quant.json'));
  analysis = readAnalysis(path.join(dir, 'results', 'digits_analysis.json'));
}, 120_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('report page text', () => {
  it('is self-contained: no external scripts, styles, images or fonts', () => {
    const page = fs.readFileSync(reportFile, 'utf8');
    expect(page.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(page).not.toMatch(/\b(src|href)\s*=/i);
    expect(page).not.toMatch(/@import|url\(/);
    // the only URL is the SVG namespace name
    expect(new Set(page.match(/https?:\/\/[^"' ]+/g))).toEqual(
      new Set(['http://www.w3.org/2000/svg']),
    );
  });

  it('is deterministic: same inputs, same bytes', () => {
    expect(renderReportHtml({ quant, analysis })).toBe(renderReportHtml({ quant, analysis }));
    expect(renderReportHtml({ quant, analysis })).toBe(fs.readFileSync(reportFile, 'utf8'));
  });

  it('escapes names from the model', () => {
    const evil = '<img src=x onerror=alert(1)>';
    const q: QuantJson = {
      layers: {
        [evil]: { scale_d: 0.1, offset_d: 0, output_error: { cosine: 0.99, sqnr_db: 20 } },
      },
    };
    const page = renderReportHtml({ quant: q, title: evil });
    expect(page).not.toContain(evil);
    expect(page).toContain(escapeHtml(evil));
  });

  it('shows the clip range the record gives, and the skipped layers with their reasons', () => {
    const h = analysis.activations['fc1']!;
    expect(h.clip).toEqual(
      clipRange(quant.layers['fc1']!.scale_d!, quant.layers['fc1']!.offset_d!),
    );
    const withSkips: QuantAnalysis = {
      ...analysis,
      layers: [
        ...analysis.layers,
        {
          name: 'fc3',
          type: 'MatMul',
          status: 'unsupported',
          reason: 'its weight is not a constant',
        },
      ],
    };
    const page = renderReportHtml({ quant, analysis: withSkips, layer: 'fc1' });
    expect(page).toContain(
      '<td>fc3</td><td>MatMul</td><td>unsupported</td><td>its weight is not a constant</td>',
    );
    expect(page).toContain('3, 1 left in float');
    expect(page).toContain(
      `clip range [${Number(h.clip[0].toPrecision(4))}, ${Number(h.clip[1].toPrecision(4))}]`,
    );
  });

  it('analyzeFiles (a run known by its files) finds what analyzeQuantization found in memory', async () => {
    const d = loadDigits();
    const train = split(d).train;
    const again = await analyzeFiles(
      {
        modelFile: DIGITS_MODEL,
        weightsFile: null,
        configFile: path.join(dir, 'config.json'),
        modifiedModelFile: path.join(dir, 'modified_model.onnx'),
        recordFile: path.join(dir, 'record.txt'),
      },
      () =>
        [0, 1, 2, 3].map((b) => ({
          [DIGITS_INPUT]: digitsBatch(d, train.slice(b * 32, (b + 1) * 32)),
        })),
      { calibration: analysis.calibration! },
    );
    expect(again).toEqual(analysis);
  });

  it('niceTicks gives round steps covering the range', () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(-2.68, 3.27, 6)).toEqual([-2, -1, 0, 1, 2, 3]);
    expect(niceTicks(0.999, 1, 4)).toEqual([0.999, 0.9995, 1]); // step 5e-4: the 1-2-5 step at or above the range / 4
  });
});

(HAS_CHROMIUM ? describe : describe.skip)('report page in headless Chromium', () => {
  it('loads without console errors, draws the charts, and the layer selector works', async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      // the flags this machine's closed network needs (see the environment notes)
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning')
          problems.push(`${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(String(e)));
      page.on('request', (r) => {
        if (!r.url().startsWith('file:')) problems.push(`network request: ${r.url()}`);
      });
      await page.goto(`file://${reportFile}`);
      expect(await page.title()).toBe('Quantization report: digits_cnn.onnx');

      // bars: one cosine and one SQNR bar per quantized layer, laid out with a real size
      expect(await page.locator('g.bar-cosine rect').count()).toBe(3);
      expect(await page.locator('g.bar-sqnr rect').count()).toBe(3);
      const histogram = page.locator('figure:not([hidden]) svg.histogram');
      expect(await histogram.count()).toBe(1);
      const box = (await histogram.boundingBox())!;
      expect(box.width).toBeGreaterThan(600);
      expect(box.height).toBeGreaterThan(250);
      expect(await page.locator('figure:not([hidden]) rect.hist-in').count()).toBeGreaterThan(10);

      // the screenshot shows them: count the bar colours' pixels
      const shot = path.join(dir, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      const png = readPng(shot);
      const pixels = (r: number, g: number, b: number) => {
        let n = 0;
        for (let i = 0; i < png.width * png.height; i++) {
          const o = i * png.channels;
          if (png.data[o] === r && png.data[o + 1] === g && png.data[o + 2] === b) n++;
        }
        return n;
      };
      expect(pixels(0x2e, 0x7d, 0x32)).toBeGreaterThan(3000); // green error bars
      expect(pixels(0x15, 0x65, 0xc0)).toBeGreaterThan(3000); // blue histogram bars
      expect(pixels(0xe3, 0xf2, 0xfd)).toBeGreaterThan(3000); // the clip-range band

      // the selector shows the chosen layer's histogram and hides the others
      const shown = () =>
        page.locator('figure[data-layer]:not([hidden])').getAttribute('data-layer');
      const first = await shown();
      const other = ['conv1', 'fc1', 'fc2'].find((l) => l !== first)!;
      await page.selectOption('#layer-select', other);
      expect(await shown()).toBe(other);
      expect(await page.locator('figure[data-layer]:not([hidden])').count()).toBe(1);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
