"""Plain nn.Module backbones and heads; importing a module registers its architectures."""
