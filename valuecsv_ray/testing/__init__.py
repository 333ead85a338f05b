"""Test doubles and demo material: for the tests, the quickstart and the benchmarks, never for a
production path.

    from valuecsv_ray.testing.llm_stub import StubLLM
    with StubLLM() as stub:                       # a real OpenAI-compatible HTTP server
        print(stub.base_url)

llm_stub: the OpenAI-compatible server with scripted replies (`python -m
valuecsv_ray.testing.llm_stub`); stub_faults: the faults it can be told to make; synthetic:
registries of random BERTs (same shapes as trained ones) for timing and plumbing.
"""
