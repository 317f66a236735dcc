"""Prints, as JSON, the CloudFormation template that SAM makes of template.yaml.

It runs the SAM CLI's own offline translation (the one behind `sam validate`), so tests
read each function's role and environment exactly as the deployed stack will have them.
No AWS call is made. Usage: .venv/sam/bin/python infra/scripts/sam-transform.py [FILE]
"""

import json
import sys

from samcli.lib.translate.sam_template_validator import SamTemplateValidator
from samcli.yamlhelper import yaml_parse


class NoManagedPolicyLookup:
    """The template names managed policies by ARN only, so nothing is looked up in IAM."""

    def load(self):
        return {}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    validator = SamTemplateValidator(template, NoManagedPolicyLookup(), region="us-east-1")
    translated = yaml_parse(validator.get_translated_template_if_valid())
    json.dump(translated, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
