// SPDX-License-Identifier: Apache-2.0
// t_mcp.sh's witness for the tools over a sandbox's state, with the official MCP
// TypeScript SDK's Client: snapshots (only this server's), sandboxes from them,
// fork under the --max-sandboxes cap, workspace archives under --workspace-dir
// (names only, no path), a port forward, and the server's --allow-host /
// --add-host applied to every sandbox the model makes. Prints "ok - ..." or
// "not ok - ..." per check; t_mcp.sh checks the host side afterwards.
// Usage: node client_state.cjs SDK_DIR SMOLVM WEB_PORT FOREIGN_SNAPSHOT [ARGS...]
//   (the server runs as `SMOLVM mcp ARGS...`: --max-sandboxes 3, --allow-host
//   web.test:WEB_PORT, --add-host web.test/other.test:127.0.0.1, --workspace-dir,
//   --allow-expose)
'use strict';
const { loadSdk, check, text, runMain } = require('./witness.cjs');

const [sdkDir, smolvm, webPort, foreign, ...smolvmArgs] = process.argv.slice(2);
const { Client, StdioClientTransport } = loadSdk(sdkDir);

// A boot under TCG on a loaded host can take a while: the SDK's default is 60 s.
const LONG = { timeout: 300000 };
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

async function main() {
        const transport = new StdioClientTransport({ command: smolvm, args: ['mcp', ...smolvmArgs],
                                                     env: { ...process.env }, stderr: 'inherit' });
        const client = new Client({ name: 'smolvm-t_mcp-state', version: '1.0.0' });
        await client.connect(transport);
        const call = (name, args, opts) => client.callTool({ name, arguments: args }, undefined, opts);
        const bash = (id, code) => call('sandbox_exec', { sandbox_id: id, language: 'bash', code }, LONG);
        const fetchIn = (id, host) => bash(id, `python3 -c 'import sys, urllib.request; ` +
                `sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())' ` +
                `http://${host}:${webPort}/hello.txt`);

        const { tools } = await client.listTools();
        const names = tools.map((t) => t.name);
        const want = ['sandbox_snapshot', 'sandbox_from_snapshot', 'sandbox_fork', 'snapshot_list', 'snapshot_delete',
                      'sandbox_persist_workspace', 'sandbox_hydrate_workspace', 'sandbox_expose_port'];
        check('tools/list has the snapshot, fork, workspace and port tools', want.every((n) => names.includes(n)),
              names);
        const instr = client.getInstructions() || '';
        check('the instructions tell the model the network the server allows',
              instr.includes(`Network: only web.test:${webPort}.`), instr);

        // Bad arguments and names that try to leave the workspace directory: refused
        // before any VM is touched, and the server keeps serving.
        let r = await call('sandbox_fork', { sandbox_id: 'x', n: 0 });
        check('sandbox_fork n=0 is refused by the schema', r.isError === true && /minimum/.test(text(r)), r);
        r = await call('sandbox_fork', { sandbox_id: 'x', n: '2' });
        check('sandbox_fork n="2" is refused by the schema', r.isError === true && /arguments\.n/.test(text(r)), r);
        r = await call('sandbox_snapshot', { sandbox_id: 'x', extra: 1 });
        check('an unknown argument is refused', r.isError === true && /unknown property/.test(text(r)), r);
        for (const bad of ['../evil', '/tmp/evil', '.hidden', 'a/../../evil', '..']) {
                r = await call('sandbox_persist_workspace', { sandbox_id: 'x', archive: bad });
                check(`persist to archive '${bad}' is refused`, r.isError === true && /invalid archive name/.test(text(r)),
                      r);
                r = await call('sandbox_hydrate_workspace', { sandbox_id: 'x', archive: bad });
                check(`hydrate from archive '${bad}' is refused`,
                      r.isError === true && /invalid archive name/.test(text(r)), r);
        }
        r = await call('sandbox_hydrate_workspace', { sandbox_id: 'x', archive: 'link' });
        check('an archive that is a symlink out of the directory is not followed',
              r.isError === true && /no archive 'link'/.test(text(r)), r);

        // Snapshots of others are invisible to the model.
        r = await call('snapshot_list', {});
        check('snapshot_list: none of this server yet (another process\'s snapshot is not shown)',
              !r.isError && Array.isArray(r.structuredContent?.snapshots) && r.structuredContent.snapshots.length === 0, r);
        r = await call('sandbox_from_snapshot', { snapshot: foreign }, LONG);
        check('sandbox_from_snapshot of another process\'s snapshot is refused',
              r.isError === true && /no snapshot .* made by this server/.test(text(r)), r);
        r = await call('snapshot_delete', { snapshot: foreign });
        check('snapshot_delete of another process\'s snapshot is refused',
              r.isError === true && /no snapshot/.test(text(r)), r);

        // A sandbox gets the server's network: the pinned allowed name, nothing else.
        r = await call('sandbox_create', {}, LONG);
        const a = r.structuredContent?.sandbox_id;
        check('sandbox_create A', !r.isError && a, r);
        r = await fetchIn(a, 'web.test');
        check('A fetches the allowed pinned host (web.test on a host loopback server)',
              r.structuredContent?.exit_code === 0 && r.structuredContent?.stdout === 'hello from the host\n', r);
        r = await fetchIn(a, 'other.test');
        check('A cannot fetch another pinned name on the same server', r.structuredContent?.exit_code !== 0 &&
              !/hello/.test(r.structuredContent?.stdout || ''), r);
        r = await fetchIn(a, '127.0.0.1');
        check('A cannot fetch the server by its address', r.structuredContent?.exit_code !== 0, r);

        // Snapshot, then a sandbox from it sees the state of that instant.
        await call('sandbox_write_file', { sandbox_id: a, path: '/root/before.txt', content: 'before\n' });
        r = await call('sandbox_snapshot', { sandbox_id: a, name: 'mcp-snap' }, LONG);
        check('sandbox_snapshot returns its name', !r.isError && r.structuredContent?.snapshot === 'mcp-snap' &&
              /^[0-9a-f]{12}$/.test(r.structuredContent?.snapshot_id || ''), r);
        r = await call('sandbox_snapshot', { sandbox_id: a, name: 'mcp-snap' }, LONG);
        check('a second snapshot of the same name is refused', r.isError === true, r);
        await call('sandbox_write_file', { sandbox_id: a, path: '/root/after.txt', content: 'after\n' });
        r = await call('snapshot_list', {});
        const snaps = r.structuredContent?.snapshots || [];
        check('snapshot_list shows this server\'s snapshot only',
              snaps.length === 1 && snaps[0].snapshot === 'mcp-snap' && snaps[0].sandbox_id === a, r);
        r = await call('sandbox_from_snapshot', { snapshot: 'mcp-snap' }, LONG);
        const b = r.structuredContent?.sandbox_id;
        check('sandbox_from_snapshot B', !r.isError && b && b !== a, r);
        r = await bash(b, 'cat /root/before.txt; test -e /root/after.txt && echo after-seen; true');
        check('B has the file written before the snapshot, not the one after',
              r.structuredContent?.stdout === 'before\n', r);
        r = await fetchIn(b, 'other.test');
        check('B (from a snapshot) has the server\'s network too: other.test refused',
              r.structuredContent?.exit_code !== 0, r);

        // The cap (--max-sandboxes 3) counts forks and sandboxes from snapshots.
        r = await call('sandbox_fork', { sandbox_id: a, n: 2 }, LONG);
        check('fork of 2 with 2 of 3 VMs live is refused (the cap)',
              r.isError === true && /limit of 3 live VMs/.test(text(r)), r);
        r = await call('sandbox_fork', { sandbox_id: a, n: 1 }, LONG);
        const c = r.structuredContent?.sandbox_ids?.[0];
        check('fork of 1 gives a sandbox', !r.isError && c && ![a, b].includes(c), r);
        r = await call('sandbox_create', {}, LONG);
        check('a fourth VM is refused', r.isError === true && /limit of 3 live VMs/.test(text(r)), r);
        r = await call('sandbox_from_snapshot', { snapshot: 'mcp-snap' }, LONG);
        check('sandbox_from_snapshot is refused at the cap too', r.isError === true && /limit/.test(text(r)), r);
        r = await call('sandbox_list', {});
        const ids = (r.structuredContent?.sandboxes || []).map((s) => s.sandbox_id);
        check('sandbox_list shows A, B and the fork', ids.length === 3 && [a, b, c].every((i) => ids.includes(i)), ids);
        const ha = (await bash(a, 'hostname')).structuredContent?.stdout;
        const hc = (await bash(c, 'hostname; cat /root/after.txt')).structuredContent?.stdout;
        check('the fork has its own hostname and A\'s files', ha && hc && hc !== ha && hc.endsWith('after\n'),
              { ha, hc });

        // Workspace archives: a name in the server's directory, into another sandbox.
        await call('sandbox_write_file', { sandbox_id: a, path: '/workspace/src/w.txt', content: 'workspace\n' });
        r = await call('sandbox_persist_workspace', { sandbox_id: a, archive: 'ws1' }, LONG);
        check('sandbox_persist_workspace', !r.isError && r.structuredContent?.archive === 'ws1' &&
              r.structuredContent?.file_bytes > 0 && /^[0-9a-f]{64}$/.test(r.structuredContent?.sha256 || ''), r);
        r = await call('sandbox_hydrate_workspace', { sandbox_id: c, archive: 'ws1', guest_path: '/root/restored' },
                       LONG);
        check('sandbox_hydrate_workspace into the fork', !r.isError && r.structuredContent?.verified === true, r);
        r = await bash(c, 'cat /root/restored/src/w.txt');
        check('the fork has the archived file', r.structuredContent?.stdout === 'workspace\n', r);
        r = await call('sandbox_hydrate_workspace', { sandbox_id: c, archive: 'nope' });
        check('hydrate of a missing archive is refused', r.isError === true && /no archive 'nope'/.test(text(r)), r);

        // A port of a sandbox, on the host's loopback at a port the server chose.
        await bash(a, 'mkdir -p /srv && echo served > /srv/p.txt && cd /srv && ' +
                      'setsid python3 -m http.server 8123 --bind 127.0.0.1 >/dev/null 2>&1 </dev/null &');
        r = await call('sandbox_expose_port', { sandbox_id: a, guest_port: 8123 });
        const hp = r.structuredContent?.host_port;
        check('sandbox_expose_port gives a host port', !r.isError && hp > 0 && r.structuredContent?.host === '127.0.0.1',
              r);
        let body = null;
        for (let i = 0; i < 120 && body === null; i++) {
                try {
                        const res = await fetch(`http://127.0.0.1:${hp}/p.txt`);
                        body = res.ok ? await res.text() : null;
                } catch (e) {
                        await sleep(500);
                }
        }
        check('the host reaches the sandbox\'s server through it', body === 'served\n', body);

        // Deleting, and one snapshot left for the disconnect to remove.
        r = await call('snapshot_delete', { snapshot: 'mcp-snap' });
        check('snapshot_delete of its own snapshot', !r.isError && r.structuredContent?.deleted === true, r);
        r = await call('snapshot_list', {});
        check('snapshot_list is empty again', r.structuredContent?.snapshots?.length === 0, r);
        r = await call('sandbox_snapshot', { sandbox_id: a, name: 'left-snap' }, LONG);
        check('a snapshot left for the disconnect', !r.isError, r);
        await client.close();
}

runMain(main);
