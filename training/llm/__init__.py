"""A pretrained chat LLM (SmolLM2-135M-Instruct) converted from its GGUF to our ONNX contract."""
