// What the browser test drivers read from the Rust test that runs them: one line at a time.
import { createInterface } from 'node:readline';

// The next line on stdin, trimmed; fails if stdin closes first (`awaited` names the line).
export function readLine(awaited) {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: process.stdin });
    lines.once('line', (line) => {
      resolve(line.trim());
      lines.close();
    });
    lines.once('close', () => reject(new Error(`stdin closed before ${awaited}`)));
  });
}
