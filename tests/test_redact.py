"""What leaves vmwave in a bundle has no secret in it, known or looking like one."""

import base64

from vmwave.domain.redact import REDACTED, redacted


def test_known_secrets_go_in_every_form_and_credentials_whatever_their_value():
    text = (
        f"pwd=hunter22 basic {base64.b64encode(b'hunter22').decode()} Authorization: Bearer abc.def-ghi "
        '{"token": "t0k3n", "password": "p"} secretKey: c2VjcmV0 ok'
    )
    out = redacted(text, ["hunter22", "ab"])  # too short to be taken for a secret: "ab" stays in words
    assert "hunter22" not in out and base64.b64encode(b"hunter22").decode() not in out
    assert "abc.def-ghi" not in out and "t0k3n" not in out and "c2VjcmV0" not in out and '"p"' not in out
    assert out.endswith(" ok") and out.count(REDACTED) >= 5
