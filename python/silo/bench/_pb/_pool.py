"""The private protobuf descriptor pool of the bench's generated messages (see ../regen.sh)."""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
