from tests.fakes.pdfs import one_page_pdf
from tests.signing import client


async def test_smoke(gateway, world, tmp_path):
    r = await client.sign(gateway.url, one_page_pdf(), {"key": "file-pem", "level": "B-B"})
    print(r.status, r.headers)
    body = r._body
    print(body[:500] if r.status != 200 else len(body))
    assert r.status == 200
    st, rep = await client.validate(gateway.url, body)
    print(st, rep)
