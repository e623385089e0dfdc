"""Minimal WeCom callback receiver: FastAPI + wechatpy's WeChatCrypto (verify + decrypt + parse),
answering an empty 200. No storage. Run with uvicorn, two workers."""
import os

from fastapi import FastAPI, Request, Response
try:  # wechatpy 2.x
    from wechatpy.work.crypto import WeChatCrypto
except ImportError:  # wechatpy 1.8 (the PyPI release) names it "enterprise"
    from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.utils import to_text
import xmltodict

crypto = WeChatCrypto(os.environ["TOKEN"], os.environ["ENCODING_AES_KEY"], os.environ.get("RECEIVE_ID", ""))
app = FastAPI()


@app.post("/callbacks/{channel_id}")
async def callback(channel_id: str, request: Request, msg_signature: str, timestamp: str, nonce: str):
    body = await request.body()
    try:
        plain = crypto.decrypt_message(body, msg_signature, timestamp, nonce)
    except Exception as exc:  # noqa: BLE001 - any crypto failure is a 400 here
        return Response(status_code=400, content=str(exc))
    msg = xmltodict.parse(to_text(plain))["xml"]
    if "MsgId" not in msg:
        return Response(status_code=400, content="no MsgId")
    return Response(status_code=200)
