// Drives a running Yunying over HTTP with @wecom/crypto, WeCom's official Node library: URL
// verification, an encrypted @-mention whose passive reply the library must verify and decrypt,
// a retry of the same delivery, and a forged signature. Channels: the demo group robot (XML
// envelope) and the demo AI bot (JSON envelope); both use an empty receive id.
//
// usage: node wecom_crypto_client.js BASE_URL
const { getSignature, encrypt, decrypt } = require('@wecom/crypto');
const crypto = require('node:crypto');

const BASE = process.argv[2].replace(/\/$/, '');
// The demo channels of config.example.toml (the server runs without --config).
const ROBOT = { id: 'demo_robot', token: 'NlBSzxeLJQXphJ2TsJOdYVVN', key: 'skurAUFkBu9lJo8aMj6o4pYSN9vuZgkwcBWEV2FnaDc' };
const AIBOT = { id: 'demo_aibot', token: '6ke6Lodaw5CKOcIWqOtxlqEq', key: 'PQuKB3sV1CbSkrsfgE3oS3X5RhUpE9QeVVvTyXznOIE' };

const failures = [];
function check(name, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${!ok && detail ? `: ${detail}` : ''}`);
  if (!ok) failures.push(name);
}

function signed(channel, plaintext) {
  const cipher = encrypt(channel.key, plaintext, '');
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = crypto.randomBytes(5).toString('hex');
  return { cipher, query: { msg_signature: getSignature(channel.token, timestamp, nonce, cipher), timestamp, nonce } };
}

async function call(method, channel, query, body, type) {
  const url = `${BASE}/callbacks/${channel.id}?${new URLSearchParams(query)}`;
  const res = await fetch(url, { method, body, headers: body ? { 'content-type': type } : {} });
  return { status: res.status, text: await res.text() };
}

// Verifies the reply's own signature (over its timestamp, nonce and ciphertext) and decrypts it.
function open(channel, fields) {
  const { cipher, signature, timestamp, nonce } = fields;
  if (!cipher || getSignature(channel.token, String(timestamp), String(nonce), cipher) !== signature) {
    throw new Error('reply signature does not verify');
  }
  const { message, id } = decrypt(channel.key, cipher);
  if (id !== '') throw new Error(`reply receive id ${JSON.stringify(id)}, expected ""`);
  return message;
}

const tag = (xml, name) => (new RegExp(`<${name}>(?:<!\\[CDATA\\[)?(.*?)(?:\\]\\]>)?</${name}>`, 's').exec(xml) || [])[1];

async function run(channel, plaintext, json) {
  const name = channel.id;
  const echo = String(crypto.randomInt(1, 2 ** 47));
  const verify = signed(channel, echo);
  const got = await call('GET', channel, { ...verify.query, echostr: verify.cipher });
  check(`${name}: URL verification echoes the plaintext`, got.status === 200 && got.text === echo, `${got.status} ${got.text}`);

  const msg = signed(channel, plaintext);
  const body = json ? JSON.stringify({ encrypt: msg.cipher }) : `<xml><Encrypt><![CDATA[${msg.cipher}]]></Encrypt></xml>`;
  const type = json ? 'application/json' : 'application/xml';
  const replyOf = (text) => {
    if (json) {
      const r = JSON.parse(text);
      return open(channel, { cipher: r.encrypt, signature: r.msgsignature, timestamp: r.timestamp, nonce: r.nonce });
    }
    return open(channel, { cipher: tag(text, 'Encrypt'), signature: tag(text, 'MsgSignature'), timestamp: tag(text, 'TimeStamp'), nonce: tag(text, 'Nonce') });
  };
  // The reply text: XML Text.Content; JSON text.content or, for the AI bot, stream.content.
  const content = (m) => {
    if (!json) return tag(m, 'Content');
    const r = JSON.parse(m);
    return (r.text && r.text.content) || (r.stream && r.stream.content);
  };
  const first = await call('POST', channel, msg.query, body, type);
  let answer = null;
  try {
    answer = replyOf(first.text);
    check(`${name}: reply verifies and decrypts`, first.status === 200);
  } catch (e) {
    check(`${name}: reply verifies and decrypts`, false, `${first.status} ${first.text} (${e.message})`);
  }
  check(`${name}: reply carries pong`, answer !== null && (content(answer) || '').includes('pong'), answer);

  const again = await call('POST', channel, msg.query, body, type);
  let replayed = null;
  try { replayed = replyOf(again.text); } catch (e) { /* reported below */ }
  check(`${name}: a retry is acknowledged with the same answer`,
    again.status === 200 && replayed !== null && answer !== null && !!content(answer) && content(replayed) === content(answer),
    `${again.status} ${again.text}`);

  const forged = await call('POST', channel, { ...msg.query, msg_signature: '0'.repeat(40) }, body, type);
  check(`${name}: a forged signature is refused`, forged.status >= 400 && forged.status < 500, String(forged.status));
}

(async () => {
  const id = `${Date.now()}`;
  await run(ROBOT,
    `<xml><WebhookUrl><![CDATA[https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=demo-robot-key-0001]]></WebhookUrl>` +
    `<MsgId><![CDATA[interop-robot-${id}]]></MsgId><ChatId><![CDATA[wr_interop_chat]]></ChatId><ChatType>group</ChatType>` +
    `<From><UserId>interop_lisi</UserId><Name><![CDATA[李四]]></Name><Alias>lisi</Alias></From>` +
    `<MsgType>text</MsgType><Text><Content><![CDATA[@运营小助手 ping]]></Content></Text></xml>`, false);
  await run(AIBOT, JSON.stringify({
    msgid: `interop-aibot-${id}`, aibotid: 'aibdemo000000001', chatid: 'wr_interop_chat', chattype: 'group',
    from: { userid: 'interop_wangwu' }, response_url: 'https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=x',
    msgtype: 'text', text: { content: '@运营小助手 ping' },
  }), true);
  console.log(`@wecom/crypto: ${failures.length} failure(s)`);
  process.exit(failures.length ? 1 : 0);
})();
