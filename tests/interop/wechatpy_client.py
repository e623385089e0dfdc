"""Drives a running Yunying over HTTP with wechatpy, an independent WeChat/WeCom library: URL
verification, an encrypted text message whose passive reply wechatpy must verify and decrypt,
a retry of the same delivery, and a forged signature. Channels: the demo self-built app
(WeCom, receive id = CorpID) and the demo Official Account (WeChat, receive id = AppID); then the
signed-JSON gateway, signed with the standard library's HMAC.

usage: python wechatpy_client.py BASE_URL
"""
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import xmltodict
from wechatpy.crypto import WeChatCrypto as MpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WorkCrypto
from wechatpy.utils import WeChatSigner

BASE = sys.argv[1].rstrip("/")

# The demo channels of config.example.toml (the server runs without --config).
APP = dict(id="demo_app", token="es4XR1BworijMUAZW8apOAhd",
           key="mor588vaYbzUClebtqMHs4XSI7Rwv0F58Gcva26s1uV", receive_id="wwdemo0000000001")
MP = dict(id="demo_mp", token="p20j1zitsIKj57jKoILhG4Bu",
          key="woAKtdnGIIyOpMKz7wQFLi3gHMJ3g4n9cJOynym13AC", receive_id="wxdemo0000000001")

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(name)


def request(method, path, query, body=None):
    url = f"{BASE}{path}?{urllib.parse.urlencode(query)}"
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/xml"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def envelope(crypto, plaintext):
    """A callback as the platform sends it: the query carries the signature, the body Encrypt."""
    nonce = uuid.uuid4().hex[:10]
    signed = xmltodict.parse(crypto.encrypt_message(plaintext, nonce, str(int(time.time()))))["xml"]
    query = {"msg_signature": signed["MsgSignature"], "timestamp": signed["TimeStamp"],
             "nonce": signed["Nonce"]}
    return query, signed["Encrypt"]


def mp_signature(token, timestamp, nonce):
    """The Official Account's plain `signature` over token, timestamp and nonce."""
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    return signer.signature


def rejections(channel, crypto, message_xml):
    """Deliveries a library can produce that the server must refuse with a 4xx."""
    name, path = channel["id"], f"/callbacks/{channel['id']}"

    def body_of(encrypt):
        return (f"<xml><ToUserName><![CDATA[{channel['receive_id']}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>").encode()

    # Correctly signed, but an hour old: outside the replay window.
    stale = str(int(time.time()) - 3600)
    signed = xmltodict.parse(crypto.encrypt_message(message_xml, "stale1", stale))["xml"]
    query = {"msg_signature": signed["MsgSignature"], "timestamp": stale, "nonce": "stale1"}
    status, _ = request("POST", path, query, body_of(signed["Encrypt"]))
    check(f"{name}: a stale timestamp is refused", 400 <= status < 500, str(status))

    # Signed with our token and key, but encrypted for another corp.
    other = WorkCrypto(channel["token"], channel["key"], "wwsomeoneelse0001")
    query, encrypt = envelope(other, message_xml)
    status, _ = request("POST", path, query, body_of(encrypt))
    check(f"{name}: another corp's receive id is refused", 400 <= status < 500, str(status))

    # A DOCTYPE in the envelope is refused before anything is parsed further.
    query, encrypt = envelope(crypto, message_xml)
    doctype = b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x "y">]>' + body_of(encrypt)
    status, _ = request("POST", path, query, doctype)
    check(f"{name}: a DOCTYPE is refused", 400 <= status < 500, str(status))


def run(channel, crypto, message_xml, official_account=False):
    name = channel["id"]
    path = f"/callbacks/{name}"

    echo_plain = str(uuid.uuid4().int % 10**19)
    if official_account:
        # MP: echostr is not encrypted; it comes back verbatim when `signature` checks out.
        ts, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
        query = {"signature": mp_signature(channel["token"], ts, nonce), "timestamp": ts,
                 "nonce": nonce, "echostr": echo_plain}
        status, body = request("GET", path, query)
        check(f"{name}: URL verification returns echostr verbatim",
              status == 200 and body == echo_plain, f"{status} {body!r}")
    else:
        # WeCom: the echostr is an encrypted random number; the answer is its plaintext.
        query, echostr = envelope(crypto, echo_plain)
        status, body = request("GET", path, {**query, "echostr": echostr})
        check(f"{name}: URL verification echoes the plaintext",
              status == 200 and body == echo_plain, f"{status} {body!r}")

    # A text message: the passive reply must carry a valid signature and decrypt with our key.
    query, encrypt = envelope(crypto, message_xml)
    if official_account:
        # Safe mode: both signatures, the user's openid and encrypt_type=aes ride in the query.
        query.update(signature=mp_signature(channel["token"], query["timestamp"], query["nonce"]),
                     openid="o_interop_openid", encrypt_type="aes")
    body_xml = f"<xml><ToUserName><![CDATA[{channel['receive_id']}]]></ToUserName>" \
               f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    status, reply = request("POST", path, query, body_xml.encode())
    check(f"{name}: message accepted", status == 200 and reply.strip() != "", f"{status} {reply!r}")
    answer = None
    if status == 200 and reply.strip():
        fields = xmltodict.parse(reply)["xml"]
        try:
            plain = crypto.decrypt_message(reply, fields["MsgSignature"], fields["TimeStamp"],
                                           fields["Nonce"])
            answer = xmltodict.parse(plain)["xml"]
        except Exception as e:  # noqa: BLE001 - report any library rejection as a failure
            check(f"{name}: reply verifies and decrypts", False, repr(e))
    if answer is not None:
        check(f"{name}: reply verifies and decrypts", True)
        check(f"{name}: reply is a text message with pong",
              answer.get("MsgType") == "text" and "pong" in (answer.get("Content") or ""),
              repr(answer))

    # The platform retries the same delivery: acknowledged again, with the same answer.
    status, again = request("POST", path, query, body_xml.encode())
    replayed = None
    if status == 200 and again.strip():
        fields = xmltodict.parse(again)["xml"]
        replayed = xmltodict.parse(crypto.decrypt_message(
            again, fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"]))["xml"]
    check(f"{name}: a retry is acknowledged with the same answer",
          status == 200 and replayed is not None and answer is not None
          and replayed.get("Content") == answer.get("Content"), f"{status} {again!r}")

    # A forged signature is refused with a 4xx.
    forged = {**query, "msg_signature": "0" * 40}
    status, _ = request("POST", path, forged, body_xml.encode())
    check(f"{name}: a forged signature is refused", 400 <= status < 500, str(status))

    if official_account:
        # Downgrade: the same URL without encrypt_type, a plaintext body under the plain
        # signature (which covers no body). A safe-mode channel refuses it.
        plain_query = {k: v for k, v in query.items() if k in ("signature", "timestamp", "nonce", "openid")}
        status, reason = request("POST", path, plain_query, message_xml.encode())
        check(f"{name}: a plaintext body is refused in safe mode", status == 400, f"{status} {reason!r}")


def counter(channel_id, outcome):
    with urllib.request.urlopen(f"{BASE}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(f'yunying_callbacks_total{{channel="{channel_id}",outcome="{outcome}"}}'):
                return int(float(line.split()[-1]))
    return 0


def contact_events(channel, crypto):
    """Two customers added in the same second are two events; a retry of one is a duplicate."""
    name, path = channel["id"], f"/callbacks/{channel['id']}"
    created = int(time.time())

    def added(external_id, closing="</xml>"):
        return (f"<xml><ToUserName><![CDATA[{channel['receive_id']}]]></ToUserName>"
                f"<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{created}</CreateTime>"
                f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>"
                f"<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
                f"<UserID><![CDATA[interop_staff]]></UserID>"
                f"<ExternalUserID><![CDATA[{external_id}]]></ExternalUserID>"
                f"<State><![CDATA[interop]]></State>{closing}")

    def deliver(plain):
        query, encrypt = envelope(crypto, plain)
        body = (f"<xml><ToUserName><![CDATA[{channel['receive_id']}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID>1000002</AgentID></xml>").encode()
        return request("POST", path, query, body)[0]

    accepted, duplicate = counter(name, "accepted"), counter(name, "duplicate")
    first = added(f"wm_interop_{uuid.uuid4().hex[:12]}")
    # The second one ends like the WxJava fixture, with `</xml >`: valid XML.
    statuses = [deliver(first), deliver(added(f"wm_interop_{uuid.uuid4().hex[:12]}", "</xml >")),
                deliver(first)]
    check(f"{name}: contact events answered 200", statuses == [200, 200, 200], str(statuses))
    check(f"{name}: two contacts added in the same second are two events",
          counter(name, "accepted") - accepted == 2, str(counter(name, "accepted") - accepted))
    check(f"{name}: a retried event is a duplicate",
          counter(name, "duplicate") - duplicate == 1, str(counter(name, "duplicate") - duplicate))


def gateway():
    """The signed-JSON gateway, with the standard library's HMAC-SHA256 as the independent signer."""
    path = "/callbacks/demo_gateway"
    secret = b"ANGVhb3kIEGzzVDgrneoSvhv"

    def post(body, timestamp, secret_used=secret):
        mac = hmac.new(secret_used, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(f"{BASE}{path}", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Yunying-Timestamp": str(timestamp),
            "X-Yunying-Signature": f"sha256={mac}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    body = json.dumps({"type": "message", "msg_id": f"interop-gw-{uuid.uuid4().hex}",
                       "sender": {"id": "wxid_interop", "name": "孙七"},
                       "group": {"id": "interop@chatroom", "name": "互通测试群"},
                       "text": "ping", "mentions_bot": True, "time": int(time.time())},
                      ensure_ascii=False).encode()
    now = int(time.time())
    status, reply = post(body, now)
    text = (json.loads(reply).get("reply") or {}).get("text", "") if status == 200 else ""
    check("demo_gateway: signed ping answered with pong", "pong" in text, f"{status} {reply!r}")
    status, again = post(body, now)
    check("demo_gateway: a retry gets the same answer", status == 200 and again == reply,
          f"{status} {again!r}")
    status, _ = post(body, now, b"not-the-channel-secret!!")
    check("demo_gateway: a wrong secret is refused", 400 <= status < 500, str(status))
    status, _ = post(body, now - 3600)
    check("demo_gateway: a stale timestamp is refused", 400 <= status < 500, str(status))


now = int(time.time())
msg_id = str(now * 1000 + 1)
app_crypto = WorkCrypto(APP["token"], APP["key"], APP["receive_id"])
rejections(APP, app_crypto,
           f"<xml><ToUserName><![CDATA[{APP['receive_id']}]]></ToUserName>"
           f"<FromUserName><![CDATA[interop_zhaoliu]]></FromUserName><CreateTime>{now}</CreateTime>"
           f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ping]]></Content>"
           f"<MsgId>{int(msg_id) + 2}</MsgId><AgentID>1000002</AgentID></xml>")
contact_events(APP, app_crypto)
run(APP, app_crypto,
    f"<xml><ToUserName><![CDATA[{APP['receive_id']}]]></ToUserName>"
    f"<FromUserName><![CDATA[interop_zhangsan]]></FromUserName><CreateTime>{now}</CreateTime>"
    f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ping]]></Content>"
    f"<MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>")
run(MP, MpCrypto(MP["token"], MP["key"], MP["receive_id"]),
    f"<xml><ToUserName><![CDATA[gh_interop]]></ToUserName>"
    f"<FromUserName><![CDATA[o_interop_openid]]></FromUserName><CreateTime>{now}</CreateTime>"
    f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ping]]></Content>"
    f"<MsgId>{int(msg_id) + 1}</MsgId></xml>", official_account=True)
gateway()
print(f"wechatpy: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
