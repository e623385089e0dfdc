// Minimal WeCom callback receiver on the official @wecom/crypto package: node:http, two cluster
// workers, verify signature + decrypt + read MsgId, answer an empty 200. No storage at all.
const cluster = require('node:cluster');
const http = require('node:http');
const { getSignature, decrypt } = require('@wecom/crypto');

const TOKEN = process.env.TOKEN;
const KEY = process.env.ENCODING_AES_KEY;
const PORT = Number(process.env.PORT || 18081);

if (cluster.isPrimary) {
  for (let i = 0; i < 2; i++) cluster.fork();
} else {
  http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const m = /<Encrypt><!\[CDATA\[(.*?)\]\]><\/Encrypt>/.exec(body);
      if (!m) { res.statusCode = 400; return res.end('no Encrypt'); }
      const q = url.searchParams;
      const sig = getSignature(TOKEN, q.get('timestamp'), q.get('nonce'), m[1]);
      if (sig !== q.get('msg_signature')) { res.statusCode = 401; return res.end('bad signature'); }
      const { message } = decrypt(KEY, m[1]);
      if (!/<MsgId>/.test(message)) { res.statusCode = 400; return res.end('no MsgId'); }
      res.statusCode = 200;
      res.end();
    });
  }).listen(PORT, '127.0.0.1');
}
