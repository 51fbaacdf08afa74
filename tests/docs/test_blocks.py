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
