"""`terraform validate` of every root (both environments, every module's example, and each module
that needs no provider aliases) against the AWS provider's schema, where a Terraform binary and
an offline provider mirror are on the machine.

No registry can be reached from here, and the only provider in the machine's mirror is
hashicorp/aws 5.x. So the tree is validated in a copy that is adapted to what is there: the aws
constraint is relaxed to 5.x (and `data.aws_region.*.region`, the v6 name, read as `.name`),
and the resources of the providers that are not there (helm, kubectl, random) are removed, with
`random_password` results replaced by a literal. What this still catches is what the parse,
checkov and the invariants cannot: an argument a resource does not have, a wrong type, a module
input that does not exist or is missing, a reference to nothing.

Both environments are also planned (`terraform test` with `command = plan` and mocked aws
providers, on the example tfvars): values the provider computes stay unknown, as in a real
plan, so a `for_each` or `count` that depends on them fails here as it would on AWS.

Skipped, saying why, where `terraform` or the mirror is absent; set FUDO_TF_PLUGIN_MIRROR to
another filesystem mirror to use one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hcl_tree import remove_blocks

MIRROR = Path(os.environ.get("FUDO_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
TERRAFORM = shutil.which("terraform")

pytestmark = pytest.mark.skipif(
    TERRAFORM is None or not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(),
    reason=f"needs a terraform binary and the aws provider in a filesystem mirror at {MIRROR}",
)

ABSENT_PROVIDER_BLOCKS = [
    r'resource\s+"helm_release"\s+"[^"]+"',
    r'resource\s+"kubectl_manifest"\s+"[^"]+"',
    r'resource\s+"random_password"\s+"[^"]+"',
    r'\nprovider\s+"helm"',
    r'\nprovider\s+"kubectl"',
    r"\n\s*(?:helm|kubectl|random)\s*=\s*",  # required_providers entries
]


def adapt(tree: Path) -> None:
    """Rewrites the copy at ``tree`` for the providers the mirror has (see the module doc)."""
    for path in tree.rglob("*.tf"):
        text = path.read_text(encoding="utf-8")
        text = text.replace('">= 6.0, < 7.0"', '">= 5.0, < 7.0"')
        text = re.sub(r"data\.aws_region\.([a-z_]+)\.region\b", r"data.aws_region.\1.name", text)
        text = re.sub(r"\n\s*(?:helm|kubectl)\s*=\s*(?:helm|kubectl)(?:\.[a-z]+)?(?=\n)", "", text)
        for header in ABSENT_PROVIDER_BLOCKS:
            text = remove_blocks(text, header)
        text = re.sub(r"random_password\.[a-z_]+(?:\[[^\]]*\])?\.result", '"placeholder-auth-token-0123456789"', text)
        if path.name == "versions.tf":
            text = remove_blocks(text, r'backend\s+"s3"\s*')
        path.write_text(text, encoding="utf-8")


def roots(tree: Path) -> list[Path]:
    """The environments, the examples, and the modules that declare no provider aliases."""
    found = sorted(tree.glob("envs/*")) + sorted(tree.glob("modules/*/examples/complete"))
    for module in sorted(tree.glob("modules/*")):
        if "configuration_aliases" not in (module / "versions.tf").read_text(encoding="utf-8"):
            found.append(module)
    return found


@pytest.fixture(scope="module")
def adapted(tmp_path_factory: pytest.TempPathFactory, terraform_root: Path) -> Path:
    tree = tmp_path_factory.mktemp("validate") / "terraform"
    shutil.copytree(terraform_root, tree, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    adapt(tree)
    (tree.parent / "plugin-cache").mkdir()
    rc = tree.parent / "terraformrc"
    rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{MIRROR}"\n  }}\n}}\n')
    return tree


def terraform_env(tree: Path) -> dict[str, str]:
    """The environment Terraform runs in for the adapted copy at ``tree``: its CLI config (the
    offline mirror) and one unpacked copy of the provider, linked into every root."""
    return {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(tree.parent / "terraformrc"),
        "TF_IN_AUTOMATION": "1",
        "TF_PLUGIN_CACHE_DIR": str(tree.parent / "plugin-cache"),
    }


INIT = ["init", "-backend=false", "-input=false", "-no-color"]
VALIDATE = ["validate", "-no-color"]


def terraform(root: Path, tree: Path, *commands: list[str]) -> str | None:
    """None if every one of ``commands`` succeeds in ``root``; else what Terraform said."""
    env = terraform_env(tree)
    for command in commands:
        proc = subprocess.run([TERRAFORM, *command], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            return f"terraform {command[0]}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return None


def validate(root: Path, tree: Path) -> str | None:
    """None if ``root`` initialises and validates; else what Terraform said."""
    return terraform(root, tree, INIT, VALIDATE)


def test_every_root_validates(adapted: Path) -> None:
    checked = roots(adapted)
    # `init` runs one root at a time: with no lock file, every init installs the provider into
    # the shared plugin cache again, and two doing so at once break each other (seen in CI:
    # "after installing ... it is still not detected in .../plugin-cache; this is a bug in
    # Terraform"). Only `validate`, which reads and writes nothing shared, runs side by side.
    inits = {root: terraform(root, adapted, INIT) for root in checked}
    ready = [root for root, err in inits.items() if err is None]
    with ThreadPoolExecutor(max_workers=4) as pool:
        validated = dict(zip(ready, pool.map(lambda root: terraform(root, adapted, VALIDATE), ready)))
    results = [inits[root] or validated[root] for root in checked]
    failures = [f"{root.relative_to(adapted)}:\n{err}" for root, err in zip(checked, results) if err]
    assert not failures, "\n\n".join(failures)
    assert len(checked) >= 12, f"validated only {checked}"


def test_a_module_input_that_does_not_exist_fails(adapted: Path, tmp_path: Path) -> None:
    broken = tmp_path / "terraform"
    shutil.copytree(adapted, broken, ignore=shutil.ignore_patterns(".terraform"))
    shutil.copy(adapted.parent / "terraformrc", tmp_path / "terraformrc")
    (tmp_path / "plugin-cache").mkdir()
    main = broken / "envs" / "staging" / "main.tf"
    text = main.read_text(encoding="utf-8")
    main.write_text(text.replace("  cidr                 = local.cidr\n", "  cidr                 = local.cidr\n  nat_gateways_per_az  = 0\n", 1), encoding="utf-8")
    assert "nat_gateways_per_az" in main.read_text(encoding="utf-8"), "the edit did not apply"
    err = validate(broken / "envs" / "staging", broken)
    assert err is not None and "Unsupported argument" in err, err


MOCK_PROVIDER = """mock_provider "aws" {{
  alias = "{alias}"
  mock_data "aws_caller_identity" {{ defaults = {{ account_id = "111122223333" }} }}
  mock_data "aws_region" {{ defaults = {{ name = "{region}" }} }}
  mock_data "aws_partition" {{ defaults = {{ partition = "aws", dns_suffix = "amazonaws.com" }} }}
  mock_data "aws_iam_policy_document" {{ defaults = {{ json = "{{}}" }} }}
}}
"""

PLANNED = {
    "envs/prod": {"tokyo": "ap-northeast-1", "osaka": "ap-northeast-3", "accelerator": "us-west-2"},
    "envs/staging": {"tokyo": "ap-northeast-1", "osaka": "ap-northeast-3"},
}


@pytest.mark.parametrize("env", sorted(PLANNED))
def test_environment_plans(adapted: Path, env: str) -> None:
    root = adapted / env
    tests = root / "tests"
    tests.mkdir(exist_ok=True)
    mocks = "".join(MOCK_PROVIDER.format(alias=a, region=r) for a, r in PLANNED[env].items())
    (tests / "plan.tftest.hcl").write_text(mocks + 'run "plan" {\n  command = plan\n}\n', encoding="utf-8")
    shutil.copy(root / "terraform.tfvars.example", root / "terraform.tfvars")
    err = validate(root, adapted)
    assert err is None, err
    proc = subprocess.run([TERRAFORM, "test", "-no-color"], cwd=root, env=terraform_env(adapted), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "1 passed, 0 failed" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-4000:]
