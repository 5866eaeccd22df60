"""The cqrs-ddd example shop: orders placed through the mediator."""
