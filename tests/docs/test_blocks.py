"""How the doc tests read a page: which blocks run, what output they promise."""
from __future__ import annotations

from tests.docs.blocks import output_fragments, shell_blocks
from tests.docs.stack import BlockRun, problems

PAGE = '''# A page

```sh
curl -s http://127.0.0.1:8000/health        # → 401 {"detail": "Authentication credentials were not provided."}
./manage jobs execute hello --wait 60
# → Execution … finished: success
jq -c . out.json
# → {"status": "completed", … "total_rows": 12,
#    "failed_rows": 0}
```

```json
{"not": "a command"}
```

<!-- not-run: a production deploy
     (Docker) -->

```bash title="production"
docker compose up -d
```

- in a list:

    ```shell
    ./manage jobs list
    ```
'''


def test_shell_blocks_their_marks_and_promises(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE, encoding="utf-8")

    first, deploy, listed = shell_blocks(page, tmp_path)

    assert (first.where, first.not_run, first.statuses) == ("page.md:3", None, {401})
    assert first.expected == ['"detail":"Authenticationcredentialswerenotprovided."', "Execution", "finished:success",
                              '"status":"completed"', '"total_rows":12', '"failed_rows":0']
    assert deploy.not_run == "a production deploy (Docker)" and deploy.language == "bash"
    assert listed.code == "./manage jobs list\n" and listed.not_run is None


def test_a_comment_without_an_arrow_promises_nothing():
    assert output_fragments("ls var/  # the reports\n# (one per analysis)\n") == ([], set())


def test_problems_name_missing_output_and_unshown_statuses(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE, encoding="utf-8")
    block = shell_blocks(page, tmp_path)[0]
    printed = ('{"detail":"Authentication credentials were not provided."}\nExecution 4 finished: success\n'
               '{"status":"completed","job_type":"annual","total_rows":12,"failed_rows":0}\n')

    assert problems(BlockRun(block=block, output=printed, statuses=[401, 200], expected=block.expected)) == []
    assert problems(BlockRun(block=block, output=printed.replace("success", "failed"), statuses=[403, 502],
                             expected=block.expected)) == [
        "output lacks 'finished:success'", "a request answered 403", "a request answered 502"]


def test_a_requests_status_stays_on_its_own_line_when_the_block_tees_the_body_to_stderr():
    import http.server
    import subprocess
    import threading

    from tests.docs.stack import PAGE_PRELUDE, request_statuses

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"status": "success", "message": "Job daily triggered successfully"}'
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        # given: a block as the docs write it, its body copied to stderr by tee, 40 times
        script = PAGE_PRELUDE + f'for i in $(seq 40); do curl -s {url} | tee /dev/stderr >/dev/null; done\n'
        # when
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    # then: every status is read, and every body is whole
    assert done.returncode == 0, done.stderr
    statuses, rest = request_statuses(done.stderr)
    assert statuses == [503] * 40
    assert rest.count('{"status": "success", "message": "Job daily triggered successfully"}') == 40
    assert "@@http" not in rest
