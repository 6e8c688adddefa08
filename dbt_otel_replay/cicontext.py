"""Which CI/CD job the replay runs in, from the job's own environment variables: pure.

:func:`detect` reads an environment mapping given to it (the CLI passes ``os.environ``) and returns
OpenTelemetry's CI/CD and VCS resource attributes (semantic conventions v1.44: the ``cicd.pipeline``,
``cicd.pipeline.run``, ``vcs.repo`` and ``vcs.ref`` entities) from each CI's documented variables:

- GitHub Actions: https://docs.github.com/en/actions/reference/workflows-and-actions/variables
- GitLab CI/CD: https://docs.gitlab.com/ci/variables/predefined_variables/
- Jenkins: https://www.jenkins.io/doc/book/pipeline/jenkins-file/#using-environment-variables and the
  Git plugin's https://plugins.jenkins.io/git/#plugin-content-environment-variables
- CircleCI: https://circleci.com/docs/reference/variables/
- Buildkite: https://buildkite.com/docs/pipelines/configure/environment-variables
- Azure Pipelines: https://learn.microsoft.com/en-us/azure/devops/pipelines/build/variables
- Bitbucket Pipelines: https://support.atlassian.com/bitbucket-cloud/docs/variables-and-secrets/

Nothing here reads the clock or the process environment; :func:`applies` decides, from times it is
given, whether a run is the current job's at all (a backfill of archived runs must never be stamped
with today's job).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from .attributes import CI_RESOURCE_KEYS
from .spans import AttributeValue

PIPELINE_NAME, RUN_ID, RUN_URL, TASK_RUN_ID, TASK_RUN_URL, REVISION, REF_NAME, REPOSITORY_URL = (
    CI_RESOURCE_KEYS
)

MAX_JOB_AGE_NANOS = 24 * 3600 * 10**9
"""A run that ended longer ago than this is not the current job's (no hosted CI job runs a day)."""


@dataclass(frozen=True)
class CiContext:
    """The CI/CD job the replay runs in.

    Attributes:
        system: Which CI (``github``, ``gitlab``, ``jenkins``, ``circleci``, ``buildkite``,
            ``azure``, ``bitbucket``).
        attributes: Its resource attributes; those the CI does not give are left out.
    """

    system: str
    attributes: dict[str, str]


def detect(environ: Mapping[str, str]) -> CiContext | None:
    """The CI/CD job these environment variables describe, if any.

    Args:
        environ: The environment (``os.environ``).

    Returns:
        The first CI whose own marker variable is set (``GITHUB_ACTIONS=true``, ``GITLAB_CI``,
        ``JENKINS_URL``, ``CIRCLECI``, ``BUILDKITE``, ``TF_BUILD``, ``BITBUCKET_BUILD_NUMBER``),
        with the attributes its variables give; None outside CI.
    """
    for system, marker, read in _SYSTEMS:
        if environ.get(marker, "").strip():
            attributes = {k: v for k, v in read(environ).items() if v}
            return CiContext(system, attributes)
    return None


def applies(generated_at: int, now: int) -> bool:
    """Whether a run can be the current job's: it ended within the last day, not in the future.

    Args:
        generated_at: When the run ended (run_results' ``generated_at``), in ns since the epoch.
        now: The replay's clock, in ns since the epoch.

    Returns:
        True when the job's context may be stamped on the run.
    """
    return 0 <= now - generated_at <= MAX_JOB_AGE_NANOS


def merge(resource: Mapping[str, AttributeValue], context: CiContext | None) -> dict[str, AttributeValue]:
    """The resource with the CI's attributes added; an attribute already given explicitly wins.

    Args:
        resource: The resource attributes (``service.name`` and ``OTEL_RESOURCE_ATTRIBUTES``).
        context: The detected CI job, or None.

    Returns:
        A new mapping: ``resource`` first, in its order, then the CI's attributes it lacks.
    """
    merged: dict[str, AttributeValue] = dict(resource)
    for key, value in (context.attributes if context else {}).items():
        merged.setdefault(key, value)
    return merged


def repository_url(remote: str) -> str:
    """A git remote as the repository's web address: ``git@host:o/r.git`` is ``https://host/o/r``.

    Credentials in the remote (``https://x-access-token:...@github.com/...``) are always removed.

    Args:
        remote: The remote's URL as the CI gives it.

    Returns:
        An https address without credentials or ``.git``; empty for an empty remote.
    """
    remote = remote.strip()
    if not remote:
        return ""
    if "://" not in remote and ":" in remote:  # scp-like syntax: [user@]host:path
        host, _, path = remote.partition(":")
        remote = f"ssh://{host}/{path.lstrip('/')}"
    parts = urlsplit(remote)
    host = parts.netloc.rpartition("@")[2]
    scheme = parts.scheme
    if scheme not in ("http", "https"):  # ssh, git: the same host's web server, not its port
        scheme, host = "https", parts.hostname or host
    return urlunsplit((scheme, host, parts.path.rstrip("/").removesuffix(".git"), "", ""))


def _github(env: Mapping[str, str]) -> dict[str, str]:
    server, repository, run = (
        env.get("GITHUB_SERVER_URL", ""),
        env.get("GITHUB_REPOSITORY", ""),
        env.get("GITHUB_RUN_ID", ""),
    )
    run_url = f"{server}/{repository}/actions/runs/{run}" if server and repository and run else ""
    attempt = env.get("GITHUB_RUN_ATTEMPT", "")
    if run_url and attempt and attempt != "1":
        run_url += f"/attempts/{attempt}"
    return {
        PIPELINE_NAME: env.get("GITHUB_WORKFLOW", ""),
        RUN_ID: run,
        RUN_URL: run_url,
        REVISION: env.get("GITHUB_SHA", ""),
        # a pull request's head branch; else the branch or tag that triggered the run
        REF_NAME: env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME", ""),
        REPOSITORY_URL: f"{server}/{repository}" if server and repository else "",
    }


def _gitlab(env: Mapping[str, str]) -> dict[str, str]:
    return {
        PIPELINE_NAME: env.get("CI_PIPELINE_NAME") or env.get("CI_PROJECT_PATH", ""),
        RUN_ID: env.get("CI_PIPELINE_ID", ""),
        RUN_URL: env.get("CI_PIPELINE_URL", ""),
        TASK_RUN_ID: env.get("CI_JOB_ID", ""),
        TASK_RUN_URL: env.get("CI_JOB_URL", ""),
        REVISION: env.get("CI_COMMIT_SHA", ""),
        REF_NAME: env.get("CI_COMMIT_REF_NAME", ""),
        REPOSITORY_URL: env.get("CI_PROJECT_URL", ""),
    }


def _jenkins(env: Mapping[str, str]) -> dict[str, str]:
    branch = env.get("BRANCH_NAME") or env.get("GIT_BRANCH", "")
    return {
        PIPELINE_NAME: env.get("JOB_NAME", ""),
        RUN_ID: env.get("BUILD_TAG") or env.get("BUILD_NUMBER", ""),
        RUN_URL: env.get("BUILD_URL", ""),
        REVISION: env.get("GIT_COMMIT", ""),
        REF_NAME: branch.removeprefix("origin/"),
        REPOSITORY_URL: repository_url(env.get("GIT_URL", "")),
    }


def _circleci(env: Mapping[str, str]) -> dict[str, str]:
    user, repo = env.get("CIRCLE_PROJECT_USERNAME", ""), env.get("CIRCLE_PROJECT_REPONAME", "")
    return {
        PIPELINE_NAME: f"{user}/{repo}" if user and repo else repo,
        RUN_ID: env.get("CIRCLE_WORKFLOW_ID", ""),
        TASK_RUN_ID: env.get("CIRCLE_WORKFLOW_JOB_ID", ""),
        TASK_RUN_URL: env.get("CIRCLE_BUILD_URL", ""),
        REVISION: env.get("CIRCLE_SHA1", ""),
        REF_NAME: env.get("CIRCLE_BRANCH") or env.get("CIRCLE_TAG", ""),
        REPOSITORY_URL: repository_url(env.get("CIRCLE_REPOSITORY_URL", "")),
    }


def _buildkite(env: Mapping[str, str]) -> dict[str, str]:
    return {
        PIPELINE_NAME: env.get("BUILDKITE_PIPELINE_SLUG", ""),
        RUN_ID: env.get("BUILDKITE_BUILD_ID", ""),
        RUN_URL: env.get("BUILDKITE_BUILD_URL", ""),
        TASK_RUN_ID: env.get("BUILDKITE_JOB_ID", ""),
        REVISION: env.get("BUILDKITE_COMMIT", ""),
        REF_NAME: env.get("BUILDKITE_TAG") or env.get("BUILDKITE_BRANCH", ""),
        REPOSITORY_URL: repository_url(env.get("BUILDKITE_REPO", "")),
    }


def _azure(env: Mapping[str, str]) -> dict[str, str]:
    collection, project, build = (
        env.get("SYSTEM_COLLECTIONURI", ""),
        env.get("SYSTEM_TEAMPROJECT", ""),
        env.get("BUILD_BUILDID", ""),
    )
    run_url = ""
    if collection and project and build:
        run_url = f"{collection.rstrip('/')}/{quote(project)}/_build/results?buildId={build}"
    return {
        PIPELINE_NAME: env.get("BUILD_DEFINITIONNAME", ""),
        RUN_ID: build,
        RUN_URL: run_url,
        TASK_RUN_ID: env.get("SYSTEM_JOBID", ""),
        REVISION: env.get("BUILD_SOURCEVERSION", ""),
        REF_NAME: env.get("BUILD_SOURCEBRANCHNAME", ""),
        REPOSITORY_URL: repository_url(env.get("BUILD_REPOSITORY_URI", "")),
    }


def _bitbucket(env: Mapping[str, str]) -> dict[str, str]:
    origin, number = env.get("BITBUCKET_GIT_HTTP_ORIGIN", ""), env.get("BITBUCKET_BUILD_NUMBER", "")
    return {
        PIPELINE_NAME: env.get("BITBUCKET_REPO_FULL_NAME", ""),
        RUN_ID: number,
        RUN_URL: f"{repository_url(origin)}/pipelines/results/{number}" if origin and number else "",
        TASK_RUN_ID: env.get("BITBUCKET_STEP_UUID", ""),
        REVISION: env.get("BITBUCKET_COMMIT", ""),
        REF_NAME: env.get("BITBUCKET_BRANCH") or env.get("BITBUCKET_TAG", ""),
        REPOSITORY_URL: repository_url(origin),
    }


_SYSTEMS: tuple[tuple[str, str, Callable[[Mapping[str, str]], dict[str, str]]], ...] = (
    ("github", "GITHUB_ACTIONS", _github),
    ("gitlab", "GITLAB_CI", _gitlab),
    ("buildkite", "BUILDKITE", _buildkite),
    ("circleci", "CIRCLECI", _circleci),
    ("azure", "TF_BUILD", _azure),
    ("bitbucket", "BITBUCKET_BUILD_NUMBER", _bitbucket),
    ("jenkins", "JENKINS_URL", _jenkins),  # last: a Jenkins agent's variables can leak into others' jobs
)
