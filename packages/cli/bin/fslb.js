#!/usr/bin/env node
// Runs the built entry point; `npm run build` makes dist/.
import '../dist/main.js';
