"""voxray.pipeline"""
