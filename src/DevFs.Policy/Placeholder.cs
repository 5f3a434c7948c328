namespace DevFs.Policy; internal static class Placeholder{}
