// SPDX-License-Identifier: Apache-2.0
// t_mcp.sh's witness: the official MCP TypeScript SDK's Client drives `smolvm mcp`
// over stdio, as Claude Desktop or Claude Code would. Prints one line per check,
// "ok - ..." or "not ok - ...", which t_mcp.sh turns into TAP; on an unexpected
// exception, "not ok - ..." with it and exit 1.
// Usage: node client_test.cjs SDK_DIR SMOLVM [ARGS...]  (SDK_DIR holds node_modules)
'use strict';
const { loadSdk, check, text, runMain } = require('./witness.cjs');

const [sdkDir, smolvm, ...smolvmArgs] = process.argv.slice(2);
const { Client, StdioClientTransport } = loadSdk(sdkDir);

// A boot under TCG on a loaded host can take a while: the SDK's default is 60 s.
const LONG = { timeout: 240000 };

async function main() {
        const transport = new StdioClientTransport({
                command: smolvm,
                args: ['mcp', ...smolvmArgs],
                env: { ...process.env },
                stderr: 'inherit',
        });
        const client = new Client({ name: 'smolvm-t_mcp', version: '1.0.0' });
        await client.connect(transport);
        check('initialize: the server names itself smolvm', client.getServerVersion()?.name === 'smolvm',
              client.getServerVersion());

        const { tools } = await client.listTools();
        const names = tools.map((t) => t.name).sort();
        // Without --workspace-dir and --allow-expose, their tools are not offered.
        const want = ['run', 'sandbox_create', 'sandbox_delete', 'sandbox_exec', 'sandbox_fork', 'sandbox_from_snapshot',
                      'sandbox_list', 'sandbox_read_file', 'sandbox_snapshot', 'sandbox_write_file', 'snapshot_delete',
                      'snapshot_list'];
        check('tools/list: the twelve tools of a server without --workspace-dir and --allow-expose',
              JSON.stringify(names) === JSON.stringify(want), names);
        const run = tools.find((t) => t.name === 'run');
        check('run declares its input schema (code, language required)',
              JSON.stringify(run?.inputSchema?.required) === JSON.stringify(['code', 'language']), run?.inputSchema);

        // The SDK validates structuredContent against each tool's outputSchema.
        let r = await client.callTool({ name: 'run', arguments: { code: 'print(6*7)', language: 'python' } },
                                      undefined, LONG);
        check('run python print(6*7) gives 42', !r.isError && r.structuredContent?.stdout === '42\n', r);
        check('run: the text block carries the same result', JSON.parse(text(r)).stdout === '42\n', text(r));

        // Errors the specification defines, and the server keeps serving.
        try {
                await client.callTool({ name: 'no_such_tool', arguments: {} });
                check('unknown tool: a protocol error', false, 'no error');
        } catch (e) {
                check('unknown tool: JSON-RPC error -32602', e.code === -32602, { code: e.code, message: e.message });
        }
        // 2025-11-25 (what this SDK speaks): invalid arguments are tool execution errors.
        r = await client.callTool({ name: 'run', arguments: { code: 'print(1)', language: 'ruby' } });
        check('bad arguments: a result with isError naming the argument',
              r.isError === true && /arguments\.language: 'ruby' is not one of/.test(text(r)), r);
        r = await client.callTool({ name: 'run', arguments: { code: 'x', language: 'bash', timeout: 99999999 } });
        check('a timeout above the server maximum is refused', r.isError === true && /maximum/.test(text(r)), r);
        await client.ping();
        check('ping after errors', true);

        r = await client.callTool({ name: 'sandbox_create', arguments: {} }, undefined, LONG);
        const id = r.structuredContent?.sandbox_id;
        check('sandbox_create returns an id', !r.isError && /^[0-9a-f]{12}$/.test(id || ''), r);

        const content = 'hello from the MCP client\nline 2 \u00e9\n';
        r = await client.callTool({ name: 'sandbox_write_file',
                                    arguments: { sandbox_id: id, path: '/root/dir/note.txt', content } });
        check('sandbox_write_file', !r.isError && r.structuredContent?.bytes_written === Buffer.byteLength(content), r);
        r = await client.callTool({ name: 'sandbox_read_file', arguments: { sandbox_id: id, path: '/root/dir/note.txt' } });
        check('sandbox_read_file returns what was written', !r.isError && r.structuredContent?.content === content, r);
        r = await client.callTool({ name: 'sandbox_write_file', arguments: { sandbox_id: id, path: '/root/bin.dat',
                                    content: Buffer.from([0, 1, 2, 255, 10]).toString('base64'), encoding: 'base64' } });
        r = await client.callTool({ name: 'sandbox_exec', arguments: { sandbox_id: id, language: 'bash',
                                    code: 'od -An -tu1 /root/bin.dat | tr -s " "; cat /root/dir/note.txt | wc -l' } });
        check('binary write (base64) and files seen by sandbox_exec',
              !r.isError && r.structuredContent?.stdout === ' 0 1 2 255 10\n2\n', r);

        // Bounded output: 300000 bytes are cut at the server's 64 KiB and marked.
        r = await client.callTool({ name: 'sandbox_exec', arguments: { sandbox_id: id, language: 'bash',
                                    code: 'head -c 300000 /dev/zero | tr "\\0" a; echo done >&2' } });
        const out = r.structuredContent?.stdout || '';
        check('a flood of output is cut and marked', r.structuredContent?.stdout_truncated === true &&
              out.length < 66000 && /truncated after 65536 bytes of text; 300000 bytes in all/.test(out) &&
              r.structuredContent?.stderr === 'done\n', { len: out.length, tail: out.slice(-120) });

        r = await client.callTool({ name: 'sandbox_exec', arguments: { sandbox_id: id, language: 'bash',
                                    code: 'sleep 60', timeout: 2 } }, undefined, LONG);
        check('timeout: killed, isError, exit 124', r.isError === true && r.structuredContent?.timed_out === true &&
              r.structuredContent?.exit_code === 124, r);

        // A long call blocks neither ping nor other calls; cancelling it kills it.
        const ac = new AbortController();
        const slow = client.callTool({ name: 'sandbox_exec', arguments: { sandbox_id: id, language: 'bash',
                                       code: 'echo $$ > /tmp/slow.pid; exec sleep 600' } }, undefined,
                                     { ...LONG, signal: ac.signal });
        let pidSeen = false;
        for (let i = 0; i < 100 && !pidSeen; i++) {
                const c = await client.callTool({ name: 'sandbox_exec', arguments: { sandbox_id: id, language: 'bash',
                                                  code: 'test -s /tmp/slow.pid && kill -0 $(cat /tmp/slow.pid)' } });
                pidSeen = c.structuredContent?.exit_code === 0;
                if (!pidSeen)
                        await new Promise((res) => setTimeout(res, 200));
        }
        check('a second call runs while the long one is in progress', pidSeen);
        await client.ping();
        check('ping answered while a call is in progress', true);
        ac.abort('test cancels it');
        try {
                await slow;
                check('cancelled call rejects', false, 'it resolved');
        } catch (e) {
                check('cancelled call rejects on the client', true);
        }
        let gone = false;
        for (let i = 0; i < 100 && !gone; i++) {
                const c = await client.callTool({ name: 'sandbox_exec', arguments: { sandbox_id: id, language: 'bash',
                                                  code: 'kill -0 $(cat /tmp/slow.pid) 2>/dev/null' } });
                gone = c.structuredContent?.exit_code === 1;
                if (!gone)
                        await new Promise((res) => setTimeout(res, 200));
        }
        check('notifications/cancelled killed the command in the guest', gone);

        r = await client.callTool({ name: 'sandbox_list', arguments: {} });
        const listed = r.structuredContent?.sandboxes || [];
        check('sandbox_list shows it running', listed.length === 1 && listed[0].sandbox_id === id &&
              listed[0].state === 'running', r);
        r = await client.callTool({ name: 'sandbox_delete', arguments: { sandbox_id: id } });
        check('sandbox_delete', !r.isError && r.structuredContent?.deleted === true, r);
        r = await client.callTool({ name: 'sandbox_exec', arguments: { sandbox_id: id, language: 'bash', code: 'true' } });
        check('a deleted sandbox is gone', r.isError === true && /no sandbox/.test(text(r)), r);

        // One more, left for the disconnect to remove (t_mcp.sh checks that).
        r = await client.callTool({ name: 'sandbox_create', arguments: {} }, undefined, LONG);
        check('a second sandbox, left for the disconnect', !r.isError && r.structuredContent?.sandbox_id, r);
        console.log(`# left ${r.structuredContent?.sandbox_id}`);
        await client.close();
}

runMain(main);
