// tsc copies no .lua files: put the scripts next to the compiled code that reads them.
import { cpSync, mkdirSync } from 'node:fs';

mkdirSync(new URL('../dist/lua', import.meta.url), { recursive: true });
cpSync(new URL('../src/lua', import.meta.url), new URL('../dist/lua', import.meta.url), { recursive: true });
