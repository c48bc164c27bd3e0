// The seed's client: connect with a session token, send one message, print the reply.
// Usage: node examples/client.mjs [ws://127.0.0.1:8000/api/ws/agent]
import WebSocket from 'ws';

const url = process.argv[2] ?? 'ws://127.0.0.1:8000/api/ws/agent';
const ws = new WebSocket(`${url}?session_token=test123`);

ws.on('open', () => {
  ws.send(JSON.stringify({ agent_type: 'echo', message: 'Hello', conversation_id: 'c1' }));
});
ws.on('message', (data) => {
  console.log(data.toString());
  ws.close();
});
ws.on('unexpected-response', (_req, res) => {
  console.error(`upgrade refused: HTTP ${res.statusCode}`);
  process.exitCode = 1;
});
ws.on('error', (err) => {
  console.error(err.message);
  process.exitCode = 1;
});
