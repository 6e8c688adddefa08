"""CI/CD context: each CI's environment, as its documentation lists the variables, gives the same keys.

Every environment below is written from the CI's own documentation of its variables (the URL is
named above each), with values in the documented shapes; the expected attributes are worked out
by hand, not by the module.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dbt_otel_replay import cicontext
from dbt_otel_replay.replay import ReplayOptions, replay
from tests.support.contract import copy_pair

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"

CASES = {
    # https://docs.github.com/en/actions/reference/workflows-and-actions/variables
    "github": (
        {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKFLOW": "nightly dbt",
            "GITHUB_RUN_ID": "1658821493",
            "GITHUB_RUN_ATTEMPT": "2",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "octocat/Hello-World",
            "GITHUB_SHA": "ffac537e6cbbf934b08745a378932722df287a53",
            "GITHUB_REF_NAME": "main",
            "GITHUB_HEAD_REF": "",
            "GITHUB_JOB": "dbt",
        },
        {
            "cicd.pipeline.name": "nightly dbt",
            "cicd.pipeline.run.id": "1658821493",
            "cicd.pipeline.run.url.full": "https://github.com/octocat/Hello-World/actions/runs/1658821493/attempts/2",
            "vcs.ref.head.revision": "ffac537e6cbbf934b08745a378932722df287a53",
            "vcs.ref.head.name": "main",
            "vcs.repository.url.full": "https://github.com/octocat/Hello-World",
        },
    ),
    # https://docs.gitlab.com/ci/variables/predefined_variables/
    "gitlab": (
        {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_PIPELINE_NAME": "",
            "CI_PROJECT_PATH": "gitlab-org/gitlab-foss",
            "CI_PIPELINE_ID": "1000",
            "CI_PIPELINE_URL": "https://gitlab.com/gitlab-org/gitlab-foss/-/pipelines/1000",
            "CI_JOB_ID": "50",
            "CI_JOB_URL": "https://gitlab.com/gitlab-org/gitlab-foss/-/jobs/50",
            "CI_COMMIT_SHA": "1ecfd275763eff1d6b4844ea3168962458c9f27a",
            "CI_COMMIT_REF_NAME": "feature/dbt",
            "CI_PROJECT_URL": "https://gitlab.com/gitlab-org/gitlab-foss",
        },
        {
            "cicd.pipeline.name": "gitlab-org/gitlab-foss",
            "cicd.pipeline.run.id": "1000",
            "cicd.pipeline.run.url.full": "https://gitlab.com/gitlab-org/gitlab-foss/-/pipelines/1000",
            "cicd.pipeline.task.run.id": "50",
            "cicd.pipeline.task.run.url.full": "https://gitlab.com/gitlab-org/gitlab-foss/-/jobs/50",
            "vcs.ref.head.revision": "1ecfd275763eff1d6b4844ea3168962458c9f27a",
            "vcs.ref.head.name": "feature/dbt",
            "vcs.repository.url.full": "https://gitlab.com/gitlab-org/gitlab-foss",
        },
    ),
    # https://www.jenkins.io/doc/book/pipeline/jenkins-file/#using-environment-variables (env-vars.html)
    # and the Git plugin's https://plugins.jenkins.io/git/#plugin-content-environment-variables
    "jenkins": (
        {
            "JENKINS_URL": "https://ci.example.com/",
            "JOB_NAME": "analytics/dbt-nightly",
            "BUILD_NUMBER": "153",
            "BUILD_TAG": "jenkins-analytics-dbt-nightly-153",
            "BUILD_URL": "https://ci.example.com/job/analytics/job/dbt-nightly/153/",
            "GIT_COMMIT": "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
            "GIT_BRANCH": "origin/main",
            "GIT_URL": "https://deploy:t0ken@git.example.com/analytics/dbt.git",
        },
        {
            "cicd.pipeline.name": "analytics/dbt-nightly",
            "cicd.pipeline.run.id": "jenkins-analytics-dbt-nightly-153",
            "cicd.pipeline.run.url.full": "https://ci.example.com/job/analytics/job/dbt-nightly/153/",
            "vcs.ref.head.revision": "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
            "vcs.ref.head.name": "main",
            "vcs.repository.url.full": "https://git.example.com/analytics/dbt",  # credentials removed
        },
    ),
    # https://circleci.com/docs/reference/variables/
    "circleci": (
        {
            "CI": "true",
            "CIRCLECI": "true",
            "CIRCLE_PROJECT_USERNAME": "acme",
            "CIRCLE_PROJECT_REPONAME": "analytics",
            "CIRCLE_WORKFLOW_ID": "6ea7c8a6-2f3e-4b0a-9a3c-2f0d1f5e8c21",
            "CIRCLE_WORKFLOW_JOB_ID": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "CIRCLE_BUILD_URL": "https://circleci.com/gh/acme/analytics/123",
            "CIRCLE_BUILD_NUM": "123",
            "CIRCLE_SHA1": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
            "CIRCLE_BRANCH": "main",
            "CIRCLE_REPOSITORY_URL": "git@github.com:acme/analytics.git",
        },
        {
            "cicd.pipeline.name": "acme/analytics",
            "cicd.pipeline.run.id": "6ea7c8a6-2f3e-4b0a-9a3c-2f0d1f5e8c21",
            "cicd.pipeline.task.run.id": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "cicd.pipeline.task.run.url.full": "https://circleci.com/gh/acme/analytics/123",
            "vcs.ref.head.revision": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
            "vcs.ref.head.name": "main",
            "vcs.repository.url.full": "https://github.com/acme/analytics",
        },
    ),
    # https://buildkite.com/docs/pipelines/configure/environment-variables
    "buildkite": (
        {
            "CI": "true",
            "BUILDKITE": "true",
            "BUILDKITE_PIPELINE_SLUG": "dbt-nightly",
            "BUILDKITE_BUILD_ID": "f62a1b4d-10f9-4790-bc1c-e2c3a0c80983",
            "BUILDKITE_BUILD_URL": "https://buildkite.com/acme/dbt-nightly/builds/1514",
            "BUILDKITE_JOB_ID": "e44f9784-e20e-4b93-a21d-f41fd5869db9",
            "BUILDKITE_COMMIT": "83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d",
            "BUILDKITE_BRANCH": "main",
            "BUILDKITE_TAG": "",
            "BUILDKITE_REPO": "git@github.com:acme/dbt.git",
        },
        {
            "cicd.pipeline.name": "dbt-nightly",
            "cicd.pipeline.run.id": "f62a1b4d-10f9-4790-bc1c-e2c3a0c80983",
            "cicd.pipeline.run.url.full": "https://buildkite.com/acme/dbt-nightly/builds/1514",
            "cicd.pipeline.task.run.id": "e44f9784-e20e-4b93-a21d-f41fd5869db9",
            "vcs.ref.head.revision": "83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d",
            "vcs.ref.head.name": "main",
            "vcs.repository.url.full": "https://github.com/acme/dbt",
        },
    ),
    # https://learn.microsoft.com/en-us/azure/devops/pipelines/build/variables
    "azure": (
        {
            "TF_BUILD": "True",
            "BUILD_DEFINITIONNAME": "dbt-nightly",
            "BUILD_BUILDID": "4242",
            "SYSTEM_COLLECTIONURI": "https://dev.azure.com/fabrikamfiber/",
            "SYSTEM_TEAMPROJECT": "Fabrikam Fiber",
            "SYSTEM_JOBID": "12f1170f-54f2-53f3-20dd-22fc7dff55f9",
            "BUILD_SOURCEVERSION": "9c2b8e0f1a3d4c5b6a7980e1f2d3c4b5a6978012",
            "BUILD_SOURCEBRANCH": "refs/heads/main",
            "BUILD_SOURCEBRANCHNAME": "main",
            "BUILD_REPOSITORY_URI": "https://fabrikamfiber@dev.azure.com/fabrikamfiber/Fabrikam%20Fiber/_git/dbt",
        },
        {
            "cicd.pipeline.name": "dbt-nightly",
            "cicd.pipeline.run.id": "4242",
            "cicd.pipeline.run.url.full": "https://dev.azure.com/fabrikamfiber/Fabrikam%20Fiber/_build/results?buildId=4242",
            "cicd.pipeline.task.run.id": "12f1170f-54f2-53f3-20dd-22fc7dff55f9",
            "vcs.ref.head.revision": "9c2b8e0f1a3d4c5b6a7980e1f2d3c4b5a6978012",
            "vcs.ref.head.name": "main",
            "vcs.repository.url.full": "https://dev.azure.com/fabrikamfiber/Fabrikam%20Fiber/_git/dbt",
        },
    ),
    # https://support.atlassian.com/bitbucket-cloud/docs/variables-and-secrets/
    "bitbucket": (
        {
            "CI": "true",
            "BITBUCKET_BUILD_NUMBER": "77",
            "BITBUCKET_PIPELINE_UUID": "{3f0e4b0a-1c2d-4e5f-8a9b-0c1d2e3f4a5b}",
            "BITBUCKET_STEP_UUID": "{a1b2c3d4-e5f6-4718-9a0b-c1d2e3f4a5b6}",
            "BITBUCKET_REPO_FULL_NAME": "acme/dbt",
            "BITBUCKET_GIT_HTTP_ORIGIN": "http://bitbucket.org/acme/dbt",
            "BITBUCKET_COMMIT": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
            "BITBUCKET_BRANCH": "main",
        },
        {
            "cicd.pipeline.name": "acme/dbt",
            "cicd.pipeline.run.id": "77",
            "cicd.pipeline.run.url.full": "http://bitbucket.org/acme/dbt/pipelines/results/77",
            "cicd.pipeline.task.run.id": "{a1b2c3d4-e5f6-4718-9a0b-c1d2e3f4a5b6}",
            "vcs.ref.head.revision": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
            "vcs.ref.head.name": "main",
            "vcs.repository.url.full": "http://bitbucket.org/acme/dbt",
        },
    ),
}


@pytest.mark.parametrize("system", sorted(CASES))
def test_each_ci_fills_the_attributes_from_its_documented_variables(system: str) -> None:
    environ, expected = CASES[system]
    context = cicontext.detect(environ)
    assert context is not None and context.system == system
    assert context.attributes == expected


def test_outside_ci_there_is_no_context() -> None:
    assert cicontext.detect({"CI": "true", "HOME": "/root", "GITHUB_ACTIONS": ""}) is None


def test_a_pull_request_names_its_head_branch() -> None:
    environ = CASES["github"][0] | {"GITHUB_HEAD_REF": "feature/x", "GITHUB_REF_NAME": "12/merge"}
    context = cicontext.detect(environ)
    assert context is not None and context.attributes["vcs.ref.head.name"] == "feature/x"


def test_explicit_resource_attributes_win() -> None:
    context = cicontext.detect(CASES["gitlab"][0])
    resource = {"service.name": "dbt", "cicd.pipeline.name": "chosen"}
    merged = cicontext.merge(resource, context)
    assert merged["cicd.pipeline.name"] == "chosen"
    assert merged["cicd.pipeline.run.id"] == "1000"
    assert list(merged)[:2] == ["service.name", "cicd.pipeline.name"]


def test_only_a_run_of_the_last_day_is_the_current_jobs() -> None:
    hour = 3600 * 10**9
    now = 1_800_000_000 * 10**9
    assert cicontext.applies(now - hour, now)
    assert not cicontext.applies(now - 25 * hour, now)  # an archived run
    assert not cicontext.applies(now + hour, now)  # from the future: not this job's either


def _resource_of(output: Path) -> dict[str, str]:
    line = output.read_text().splitlines()[0]
    attributes = json.loads(line)["resourceSpans"][0]["resource"]["attributes"]
    return {kv["key"]: kv["value"]["stringValue"] for kv in attributes}


def test_replay_stamps_a_fresh_run_and_never_an_old_one(tmp_path: Path) -> None:
    environ, expected = CASES["github"]
    old = copy_pair(FIXTURES / "run", tmp_path / "old")  # generated days before today
    fresh = copy_pair(FIXTURES / "run", tmp_path / "fresh")
    document = json.loads((fresh / "run_results.json").read_text())
    ended = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - 60))
    document["metadata"]["generated_at"] = ended
    document["metadata"].pop("invocation_started_at", None)
    (fresh / "run_results.json").write_text(json.dumps(document))
    for target, stamped in ((fresh, True), (old, False)):
        output = tmp_path / f"{target.name}.jsonl"
        options = ReplayOptions(
            output=output, ci_environ=environ, traceparent_to=tmp_path / f"{target.name}.tp"
        )
        replay(target, options)
        resource = _resource_of(output)
        assert resource["service.name"] == "dbt"
        assert (resource == {"service.name": "dbt", **expected}) is stamped, target.name
        if not stamped:
            assert resource == {"service.name": "dbt"}
