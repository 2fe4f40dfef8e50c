export const placeholder = 'shared';
