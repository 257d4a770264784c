"""Property-based fuzzing of the whole API with schemathesis, against the app's own OpenAPI
document: no server error, and every answer as documented (status, content type, headers,
body schema). The example count and seed come from .ci/run."""

import os
import subprocess
import sys
from pathlib import Path

from postroom.auth.service import NewOrganization

EXAMPLES = os.environ.get("POSTROOM_FUZZ_EXAMPLES", "10")
SEED = os.environ.get("POSTROOM_FUZZ_SEED", "20261125")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "allow_header_conformance",
    ]
)


class TestFuzz:
    def test_no_server_errors_and_every_answer_matches_the_schema(
        self, api_url: str, organization: NewOrganization, tmp_path: Path
    ) -> None:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "run",
                f"{api_url}/openapi.json",
                "--header",
                f"REB-APIKEY: {organization.api_key}",
                "--checks",
                CHECKS,
                "--max-examples",
                EXAMPLES,
                "--seed",
                SEED,
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        assert " passed" in result.stdout
