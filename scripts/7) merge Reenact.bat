@echo off
rem 7) merge Reenact: the src face making each data_dst frame's expression and head turn, put onto the
rem frame: data_dst/merged and data_dst/merged_mask. Interactive window on a terminal; batch with the
rem default settings otherwise.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" merge ^
    --input-dir "%WORKSPACE%\data_dst" ^
    --output-dir "%WORKSPACE%\data_dst\merged" ^
    --output-mask-dir "%WORKSPACE%\data_dst\merged_mask" ^
    --aligned-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    --model Reenact ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
