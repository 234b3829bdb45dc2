// tests/mcp/client.mjs: the official MCP TypeScript SDK (@modelcontextprotocol/sdk) driving
// `replgate mcp` over its stdio transport, remote-controlled by tests/test_mcp.py.
//
//   node client.mjs SERVER [ARG...]      (the server's command line)
//
// Reads commands from stdin, one JSON object a line, each with a `tag`, and starts each at once,
// so several calls can be in flight. Prints one JSON line per event, tagged:
//   {"tag", "ok": true, "result"}                 a command finished
//   {"tag", "ok": false, "error": {code, message}} it failed (an McpError keeps its JSON-RPC code)
//   {"tag", "progress": {progress, message}}      a progress notification of a call
//   {"tag": "client-error", "message"}            something the SDK could not place (an answer
//                                                 to no request of its own, a line it cannot read)
// Commands: connect; list; call {tool, args, progress, timeout_ms}; abort {target}: aborts the
// call of that tag (the SDK sends notifications/cancelled); raw {data_b64}: bytes written to the
// server's stdin behind the SDK's back; close.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import readline from "node:readline";

const [server, ...serverArgs] = process.argv.slice(2);
const transport = new StdioClientTransport({
    command: server, args: serverArgs, env: { ...process.env }, stderr: "inherit" });
const client = new Client({ name: "replgate-test", version: "1.0.0" });
client.onerror = (e) => emit({ tag: "client-error", message: String(e && e.message || e) });
const aborts = new Map();

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}

async function run(cmd) {
    switch (cmd.op) {
    case "connect":
        await client.connect(transport);
        return { server: client.getServerVersion(), capabilities: client.getServerCapabilities(),
                 instructions: client.getInstructions() };
    case "list":
        return await client.listTools();
    case "call": {
        const abort = new AbortController();
        aborts.set(cmd.tag, abort);
        const options = { signal: abort.signal, timeout: cmd.timeout_ms ?? 120000 };
        if (cmd.progress) {
            options.onprogress = (p) => emit({ tag: cmd.tag, progress: p });
            options.resetTimeoutOnProgress = true;
        }
        try {
            return await client.callTool({ name: cmd.tool, arguments: cmd.args }, undefined, options);
        } finally {
            aborts.delete(cmd.tag);
        }
    }
    case "abort":
        aborts.get(cmd.target)?.abort("the test cancels it");
        return { aborted: cmd.target };
    case "raw":
        // The SDK only writes well-formed messages: this is how a broken client looks.
        transport._process.stdin.write(Buffer.from(cmd.data_b64, "base64"));
        return { written: true };
    case "close":
        await client.close();
        return { closed: true };
    default:
        throw new Error("unknown command " + cmd.op);
    }
}

const input = readline.createInterface({ input: process.stdin });
input.on("line", (line) => {
    if (!line.trim())
        return;
    const cmd = JSON.parse(line);
    run(cmd).then(
        (result) => emit({ tag: cmd.tag, ok: true, result }),
        (e) => emit({ tag: cmd.tag, ok: false, error: { code: e?.code ?? null, name: e?.name ?? null,
                                                        message: String(e?.message ?? e) } }));
});
input.on("close", () => client.close().finally(() => process.exit(0)));
