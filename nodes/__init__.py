"""ComfyUI nodes: thin adapters that convert IMAGE/MASK tensors and call gfp_core stages."""
NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
