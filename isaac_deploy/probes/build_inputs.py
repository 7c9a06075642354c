"""What an image build starts from: the digest of the project's selected files and the engine's
view of some images.

Run by the ``ImageBuildInputs`` fact as ``python3 -c <program> CONTEXT [-i PATH]... REF...``
(joined after ``dockerapi`` and ``context_digest``; ``-i``: an include path of the user's);
prints one JSON object.
"""

import json
import os
import sys
import threading
from urllib.parse import quote

if "docker_client" not in globals():  # imported as a module, not joined into one program
    from isaac_deploy.probes.context_digest import context_digest
    from isaac_deploy.probes.dockerapi import docker_client


def build_inputs(context, refs, include=()):
    urls = {ref: "/images/{}/json".format(quote(ref, safe="")) for ref in refs}
    answers = {}
    engine = threading.Thread(
        target=lambda: answers.update(docker_client().get_many(urls.values()))
    )
    engine.start()  # ask the engine while the context is being hashed
    if not os.path.isdir(context):
        digest = {"error": "no such build context: " + context}
    else:
        try:
            digest = context_digest(context, include)
        except OSError as error:
            where = error.filename or context
            digest = {"error": f"cannot read {where}: {error.strerror or error}"}
    engine.join()
    images, error = {}, None
    for ref in refs:
        status, data = answers[urls[ref]]
        if status == 200 and isinstance(data, dict):
            config = data.get("Config") or {}
            images[ref] = {"id": data.get("Id"), "labels": config.get("Labels") or {}}
        elif status == 404:
            images[ref] = None
        else:
            error = data if status == 0 else f"HTTP {status}: {data}"
    return {"context": digest, "images": images, "error": error}


def parse_args(args):
    """``CONTEXT [-i PATH]... REF...`` -> ``(context, refs, include)``."""
    context, rest, refs, include = args[0], list(args[1:]), [], []
    while rest:
        arg = rest.pop(0)
        if arg == "-i" and rest:
            include.append(rest.pop(0))
        else:
            refs.append(arg)
    return context, refs, include


if __name__ == "__main__":
    print(json.dumps(build_inputs(*parse_args(sys.argv[1:]))))
