// SPDX-License-Identifier: Apache-2.0
// What t_mcp.sh's SDK witnesses (client_test.cjs, client_state.cjs) share: the
// MCP TypeScript SDK loaded from SDK_DIR (t_mcp.sh's npm ci), one "ok - ..." or
// "not ok - ..." line per check (t_mcp.sh makes TAP of them), and the exit
// status: 1 if a check failed or main threw (printed as a "not ok" line).
'use strict';
const path = require('node:path');
const { createRequire } = require('node:module');

function loadSdk(sdkDir) {
        const sdk = createRequire(path.join(sdkDir, 'package.json'));
        return { Client: sdk('@modelcontextprotocol/sdk/client/index.js').Client,
                 StdioClientTransport: sdk('@modelcontextprotocol/sdk/client/stdio.js').StdioClientTransport };
}

let failed = 0;
function check(desc, cond, detail) {
        if (cond) {
                console.log(`ok - ${desc}`);
        } else {
                failed++;
                console.log(`not ok - ${desc}${detail !== undefined ? ': ' + JSON.stringify(detail).slice(0, 400) : ''}`);
        }
}

// The text blocks of a CallToolResult, joined.
const text = (res) => (res.content || []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');

function runMain(main) {
        main().then(() => process.exit(failed ? 1 : 0), (e) => {
                console.log(`not ok - unexpected exception: ${(e && e.stack || String(e)).replace(/\n/g, ' | ')}`);
                process.exit(1);
        });
}

module.exports = { loadSdk, check, text, runMain };
