"""procvlm.models.vlm: a progress model over any transformers image-text-to-text VLM.

``VLMProgressModel`` (modeling_vlm), its ``VLMConfig`` (configuration_vlm), the answer parser
(parsing), the token-probability readout (readout), and tiny random-weight builders for tests
and benchmarks (tiny). Importing this package does not import torch; the submodules do.
"""

__all__ = ["VLMConfig", "VLMProgressModel"]


def __getattr__(name: str):
    if name == "VLMProgressModel":
        from procvlm.models.vlm.modeling_vlm import VLMProgressModel

        return VLMProgressModel
    if name == "VLMConfig":
        from procvlm.models.vlm.configuration_vlm import VLMConfig

        return VLMConfig
    raise AttributeError(name)
