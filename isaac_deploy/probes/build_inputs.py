"""What an image build starts from: the context digest, the digests of the Dockerfiles' text and
the engine's view of some images.

Run by the ``ImageBuildInputs`` fact as ``python3 -c <program> CONTEXT [-f DOCKERFILE]... REF...``
(joined after ``dockerapi`` and ``context_digest``); prints one JSON object.
"""

import json
import os
import sys
import threading
from urllib.parse import quote

if "docker_client" not in globals():  # imported as a module, not joined into one program
    from isaac_deploy.probes.context_digest import context_digest, dockerfile_digest
    from isaac_deploy.probes.dockerapi import docker_client


def build_inputs(context, refs, dockerfiles=()):
    urls = {ref: "/images/{}/json".format(quote(ref, safe="")) for ref in refs}
    answers = {}
    engine = threading.Thread(
        target=lambda: answers.update(docker_client().get_many(urls.values()))
    )
    engine.start()  # ask the engine while the context is being hashed
    if os.path.isdir(context):
        digest = context_digest(context)
    else:
        digest = {"error": "no such build context: " + context}
    files = {path: dockerfile_digest(path) for path in dockerfiles}
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
    return {"context": digest, "dockerfiles": files, "images": images, "error": error}


def parse_args(args):
    """``CONTEXT [-f DOCKERFILE]... REF...`` -> ``(context, refs, dockerfiles)``."""
    context, rest, refs, dockerfiles = args[0], list(args[1:]), [], []
    while rest:
        arg = rest.pop(0)
        if arg == "-f" and rest:
            dockerfiles.append(rest.pop(0))
        else:
            refs.append(arg)
    return context, refs, dockerfiles


if __name__ == "__main__":
    print(json.dumps(build_inputs(*parse_args(sys.argv[1:]))))
